"""Attachments as opaque blobs: chunked resumable uploads, ranged downloads, garbage collection."""
