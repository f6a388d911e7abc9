"""Procedures: signed, versioned form definitions an organisation publishes."""
