"""The paper's models as specs of one degradation pipeline, and their losses."""
from .pipeline import DegradationPipeline, PipelineOutput
from .registry import MODELS, ModelSpec, get_model

__all__ = ["DegradationPipeline", "PipelineOutput", "MODELS", "ModelSpec", "get_model"]
