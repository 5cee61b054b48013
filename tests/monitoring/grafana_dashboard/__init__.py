"""The code of tests/monitoring/dashboard.py (its docstring says what each subcommand checks).

  files         where the dashboard and its provisioning files are, and reading them
  sdk_model     validate: decode, types, unknown, panel-type, schema (the Grafana Foundation SDK's model)
  provisioning  validate: datasource, provider (the provisioning files and Compose's mounts)
  contract      validate: contract, variables, grid, drawable, query (this project's own rules)
  validate      the validate subcommand
  prometheus    evaluate: variables substituted as Grafana does, queries against a Prometheus
  render        evaluate: values formatted as Grafana shows them, panels drawn with matplotlib
  evaluate      the evaluate subcommand
"""
