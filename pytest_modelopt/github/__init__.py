"""The bundled GitHub Action's steps (``modelopt github ...``)."""
