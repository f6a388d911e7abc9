"""The commands of ``postbox-desk``, one module per area; :mod:`postbox.desk.cli` parses and
dispatches to them."""
