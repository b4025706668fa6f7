//! Developer tooling behind the CLI: dev certificates, token minting and the demo.
