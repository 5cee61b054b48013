use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::Args;
use schema_registry_converter::async_impl::schema_registry::SrSettings;

#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Base URL of the Confluent-compatible Schema Registry (for Apicurio, its
    /// ccompat API, e.g. http://localhost:8081/apis/ccompat/v7).
    #[arg(
        long = "schema-registry-url",
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://localhost:8081"
    )]
    pub url: String,

    /// Timeout of one request to the Schema Registry.
    #[arg(long = "schema-registry-timeout", env = "SCHEMA_REGISTRY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl RegistryArgs {
    pub fn settings(&self) -> Result<SrSettings> {
        SrSettings::new_builder(self.url.trim_end_matches('/').to_string())
            .set_timeout(self.timeout)
            .build()
            .map_err(|e| anyhow!("schema registry URL {:?} is not usable: {e}", self.url))
    }
}
