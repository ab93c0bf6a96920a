"""Stage 7, report: renderers of the verdict document — terminal, Markdown, HTML, JUnit —
and the files a run writes."""
