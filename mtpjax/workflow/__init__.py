"""The paper's workflow end to end (``mtpjax run WORKFLOW.toml``): build → learn → fit → quench → sweep → analyze → report.

The file is :class:`mtpjax.config.workflow.WorkflowConfig`; each stage is a module of this package
(:mod:`.build`, :mod:`.learn`, :mod:`.fit`, :mod:`.production`, :mod:`.analyze`, :mod:`.report`) and
:class:`Workflow` runs them in order, resumably.
"""
from mtpjax.config.workflow import STAGES, WorkflowConfig, load_workflow
from mtpjax.workflow.stages import Workflow

__all__ = ["STAGES", "WorkflowConfig", "load_workflow", "Workflow"]
