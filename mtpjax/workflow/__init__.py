"""The paper's workflow end to end (``mtpjax run WORKFLOW.toml``): build → learn → fit → quench → sweep → analyze → report."""
from .config import DEFAULTS, STAGES, load_workflow
from .stages import Workflow

__all__ = ["DEFAULTS", "STAGES", "load_workflow", "Workflow"]
