"""mtlmad's proxy tasks: the shared interface (`mtlmad.tasks.base`, nbs/03_tasks.base.ipynb), one module per task
(nbs/03a..03f) and the registry (`mtlmad.tasks.registry`, nbs/03g). This package stub is the only hand-written file
here: it re-exports the interface and the registry."""
from .base import TaskBatch, ProxyTask
from .registry import task_class, register_task, unregister_task, make_task, make_tasks
