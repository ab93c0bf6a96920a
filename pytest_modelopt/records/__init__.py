"""Stage 4, record: the versioned run format, its writer and readers, the case in flight,
and how a case's outcome is decided."""
