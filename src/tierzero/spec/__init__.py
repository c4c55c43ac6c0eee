"""The tierzero spec: models, loading with positions, and validation."""

from tierzero.spec.errors import Problem, SpecError
from tierzero.spec.loader import LoadedSpec, load_spec, load_spec_bytes
from tierzero.spec.models import Platform

__all__ = ["LoadedSpec", "Platform", "Problem", "SpecError", "load_spec", "load_spec_bytes"]
