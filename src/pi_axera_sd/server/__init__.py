"""The HTTP service: the original service's ``/generate``, the A1111 API subset, interrogation, operations.

``pi_axera_sd.server.app.create_app`` builds the ASGI app; ``pi-axera-sd serve`` runs it.
(Nothing is imported here, so the CLI stays quick to start.)

Map (a request flows down it: middleware, a route, the core; dialects shape what comes and goes):

  app.py                 assembly: middleware, routers, error handlers, the lifespan
  routes/
    generate             POST /generate (the original service's endpoint; AXERA's sample dialect too)
    a1111                /sdapi/v1/txt2img, img2img
    a1111_meta           options, model/sampler listings, png-info, memory
    progress             /sdapi/v1/progress, interrupt, skip
    interrogate          /sdapi/v1/interrogate (flat and structured)
    openai               /v1/models, /v1/images/generations, edits, files
    ops                  /health, /ready, /metrics
    prompt               /prompt/tokens: the page's token counters, read as generation reads prompts
    web                  the browser page at / and its assets under /ui/
  middleware/
    access               request id, X-Process-Time, metrics, the access log line
    auth                 HTTP Basic and bearer tokens
    body_limit           the request body size limit, enforced while it streams in
  core/
    service              what one running service holds: settings, lane, models, metrics, policy
    lane                 the one inference thread and its queue
    context              per-request helpers: the service, JSON body, log fields, waiting on the lane
    generation           one request shape (GenerationRequest) for every dialect, end to end
    failures             whose fault an error is: its status, and whether it counts against the runtime
    json_body            the JSON edge: UTF-8, size and depth limits, normalised text
    redact               what logs may hold: no image bytes, no secrets, short strings
    host_work            host-side work off the lane: encoding, saving copies
    output_folder        OUTPUT_DIR's state: a copy that cannot be written is logged, counted, shown
    accelerator          the NPU's state and the start-up wait for it
    firstrun             the first-run download of the default model
    preflight            checks before any model loads (port, runtimes, variant)
    runner               uvicorn with the service's stop semantics (drain, grace)
    metrics              Prometheus metrics
    logs                 JSON log lines, console and journald formats
    modelinfo            what the loaded model is called and what runs it
    image_links          short-lived image URLs for OpenAI "url" answers
    live_preview         live previews for /sdapi/v1/progress
  dialects/
    schemas              request bodies
    a1111                A1111 response shapes and the options store
    axera_sample         AXERA's sample server dialect on /generate
    problems             errors as responses, in each dialect's shape (original service, A1111, OpenAI)
    apidoc               the OpenAPI document, OPTIONS and Allow
"""
