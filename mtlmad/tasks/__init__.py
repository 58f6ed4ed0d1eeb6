"""mtlmad's proxy tasks: the shared interface (`mtlmad.tasks.base`, from nbs/03_tasks.ipynb) and one module per task
(nbs/03a..03e). This package stub is the only hand-written file here: it re-exports the interface."""
from .base import TaskBatch, ProxyTask, TaskRegistry, TASKS, make_task, example_images
