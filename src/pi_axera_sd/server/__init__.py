"""The HTTP service: the seed's ``/generate``, the A1111 API subset, interrogation, operations.

``pi_axera_sd.server.app.create_app`` builds the ASGI app; ``pi-axera-sd serve`` runs it.
(Nothing is imported here, so the CLI stays quick to start.)

Map (a request flows down it: middleware, a route, the core; dialects shape what goes back):

  routes      routes_generate (/generate), routes_a1111 (txt2img, img2img), routes_a1111_meta
              (options, listings, png-info), routes_progress, routes_interrogate, routes_openai
              (/v1/images), routes_ops (health, ready, metrics), routes_web (the page at /)
  middleware  access (request id, timing, access log), auth, limits (body size), inputs (JSON
              bodies), redact (what logs may hold)
  core        app (assembly, lifespan), service (settings, lane, models, metrics), lane (the one
              inference thread), generation (a request end to end), host (encoding and saving off
              the lane), waiting, accelerator (NPU state and waits), firstrun, preflight, runner
              (uvicorn), metrics, logs, logformat, runtimeinfo, modelinfo, context, image_links,
              live_preview
  dialects    schemas (request bodies), a1111 (A1111 response shapes), axera_sample, problems
              (errors as responses), openai_errors, apidoc (OpenAPI, OPTIONS)
"""
