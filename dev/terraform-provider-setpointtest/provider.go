package main

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
)

// Version is reported to Terraform; keep in sync with the mirror path written by dev/services.
const Version = "0.1.0"

type setpointTestProvider struct{}

// New returns the provider; it takes no configuration.
func New() provider.Provider { return &setpointTestProvider{} }

func (p *setpointTestProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "setpointtest"
	resp.Version = Version
}

func (p *setpointTestProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Test provider for setpoint: resources are local JSON/text files that can be edited out of band.",
	}
}

func (p *setpointTestProvider) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {
}

func (p *setpointTestProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{NewSecurityGroupResource, NewFileResource}
}

func (p *setpointTestProvider) DataSources(context.Context) []func() datasource.DataSource {
	return nil
}
