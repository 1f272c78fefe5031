"""Load profiles for capacity planners: locust virtual devices against a SemaFore relay.

Modules (docs/load.md is the user's guide):

- :mod:`loadtests.profile`   named profiles (``profiles/*.yaml``) and their typed parser;
- :mod:`loadtests.targets`   which relay to load (embedded, local, a loopback URL, or a host
  someone consented to with ``--allow-target``) and the refusal of anything else;
- :mod:`loadtests.corpus`    provisioning plus real SMX1/DR_V1 envelopes made ahead of time by
  the reference client, so crypto never throttles the generator;
- :mod:`loadtests.locustfile` the virtual devices (HTTP + WebSocket, run by locust/gevent);
- :mod:`loadtests.samples`   per-request samples, window statistics, verdicts and the
  generator guard;
- :mod:`loadtests.stamps`    message ids carrying their send time (latency across workers);
- :mod:`loadtests.distribution` locust master/worker roles: device slots, merged samples;
- :mod:`loadtests.report`    the capacity report (summary JSON/Markdown, chart) rendered from
  one list of judged windows;
- :mod:`loadtests.search`    the capacity search (step users up until the knee);
- :mod:`loadtests.runner`    one run end to end (target → corpus → locust master/workers →
  report).
"""
