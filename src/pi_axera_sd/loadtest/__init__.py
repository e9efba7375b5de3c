"""``pi-axera-sd loadtest``: concurrent clients against one or more running services (or instances
it starts itself), swept over concurrency and instance counts, reported as JSON, markdown and PNG."""
