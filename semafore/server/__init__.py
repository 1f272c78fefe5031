"""The reference relay (seed §2–§4): accounts, key directory, per-device queues, attachments,
audit and retention behind one ASGI app (:func:`semafore.server.app.create_app`)."""
