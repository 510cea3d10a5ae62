// terraform-provider-setpointtest: a tiny Terraform/OpenTofu provider for setpoint's integration tests.
//
// Its resources manage local files that live OUTSIDE Terraform's state, so that a change made by hand
// (or by a test) to such a file is seen by `terraform plan -refresh-only` as real `resource_drift`.
// Source address: local.test/setpoint/setpointtest, version 0.1.0 (installed by dev/services through a
// filesystem mirror; see docs/development.md). Never published anywhere.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
)

// Address is the provider source address the tests use in required_providers.
const Address = "local.test/setpoint/setpointtest"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "start the provider in debug mode (for delve)")
	flag.Parse()
	err := providerserver.Serve(context.Background(), New, providerserver.ServeOpts{Address: Address, Debug: debug})
	if err != nil {
		log.Fatal(err)
	}
}
