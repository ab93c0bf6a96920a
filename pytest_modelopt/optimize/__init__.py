"""From eval results to a fine-tuned model: training sets built from run records
(``training_data``), checked (``validate``), written with a manifest and launched
(``launch``, ``flow``) on a backend (``backends``: OpenAI, local TRL, export, plugins')."""
