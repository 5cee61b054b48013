"""The checks of tests/compose_check.py (its docstring lists them), one module per subject.

  report          the result lines and the tally
  model           what the checks read: compose-go's project, the file as written, .env
  loaders         spec, config: Compose's own loaders accept the file
  environment     consumer-env, producer-env, pushgateway-env: every variable is one a binary reads
  services        readiness, consumer-scale
  resources       heap, memory, light-probes: the stack fits a laptop
  dockerfiles     builder-stage, arch
  control_center  control-center
  airflow         airflow-await, airflow-secrets
  monitoring      the monitoring profile: its model's checks and `monitoring`
  secure          the security override: its model's checks, `secrets` and its self-test
  self_test       self-test: each check fails on a broken copy of the files
"""
