// Package archtest holds no code, only tests that check the shape of the
// module: which package may import which (docs/architecture.md).
package archtest
