"""Class sets of a run: the names stage two uses, from their one home `mer_pipeline.classes` (shared with
`mer-prep export`). See that module for how emotions map to classes, and docs/method.md."""
from mer_pipeline.classes import (AS_WRITTEN, AS_WRITTEN_DATASETS, CLASS_SET_NAMES, CLASS_SETS, DEFAULT_CLASS_SET,
                                  SYNONYMS, ClassSet, as_written_class_set, canonical_dataset, canonical_emotion,
                                  get_class_set, infer_class_set)

__all__ = ["AS_WRITTEN", "AS_WRITTEN_DATASETS", "CLASS_SETS", "CLASS_SET_NAMES", "DEFAULT_CLASS_SET", "SYNONYMS",
           "ClassSet", "as_written_class_set", "canonical_dataset", "canonical_emotion", "get_class_set",
           "infer_class_set"]
