// Package wire checks the ipam module's wire types against SpiderPool's
// generated models. It is its own module (outside the product's module
// graph, and apart from tests/tools/spiderpool so the spiderpool binary
// builds with exactly its own dependencies).
package wire
