"""The credential domain, free of Flask: the document model (document),
canonical hashing (canonical), EIP-712 signing (signing), Merkle batches
(merkle), the chain client and embedded node (chain, node), the verifier's
chain reads (reader), the accreditor's on-chain registry (accreditation), keys (keys),
storage, issuance and verification. The web layer (web, api) and the CLI
(cli, cli_*) are thin faces over these."""
