package adapter

// primitiveOps are the single-primitive operations of the contract (filled in from
// docs/adapter-contract.md).
var primitiveOps = map[string]Handler{}
