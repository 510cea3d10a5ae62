package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// securityGroupDocument is the JSON written to `path`: a stand-in for a cloud firewall rule set.
// Editing this file out of band (e.g. adding a port) is what the drift tests do.
type securityGroupDocument struct {
	Name         string  `json:"name"`
	Description  *string `json:"description,omitempty"`
	IngressPorts []int64 `json:"ingress_ports"`
}

type securityGroupModel struct {
	ID           types.String `tfsdk:"id"`
	Path         types.String `tfsdk:"path"`
	Name         types.String `tfsdk:"name"`
	Description  types.String `tfsdk:"description"`
	IngressPorts types.List   `tfsdk:"ingress_ports"`
}

type securityGroupResource struct{}

// NewSecurityGroupResource returns the setpointtest_security_group resource.
func NewSecurityGroupResource() resource.Resource { return &securityGroupResource{} }

var (
	_ resource.Resource                = &securityGroupResource{}
	_ resource.ResourceWithImportState = &securityGroupResource{}
)

func (r *securityGroupResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_security_group"
}

func (r *securityGroupResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A local JSON document {name, description, ingress_ports} standing in for a cloud security group.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, Description: "Same as path.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"path": schema.StringAttribute{
				Required: true, Description: "File holding the JSON document; changing it replaces the resource.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"name":        schema.StringAttribute{Required: true},
			"description": schema.StringAttribute{Optional: true},
			"ingress_ports": schema.ListAttribute{
				Required: true, ElementType: types.Int64Type, Description: "Open TCP ports, in order.",
			},
		},
	}
}

func (r *securityGroupResource) write(ctx context.Context, m *securityGroupModel) error {
	doc := securityGroupDocument{Name: m.Name.ValueString(), IngressPorts: []int64{}}
	if !m.Description.IsNull() {
		d := m.Description.ValueString()
		doc.Description = &d
	}
	if diags := m.IngressPorts.ElementsAs(ctx, &doc.IngressPorts, false); diags.HasError() {
		return fmt.Errorf("ingress_ports: %v", diags)
	}
	return writeJSON(m.Path.ValueString(), doc)
}

func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (r *securityGroupResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m securityGroupModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.write(ctx, &m); err != nil {
		resp.Diagnostics.AddError("cannot write security group document", err.Error())
		return
	}
	m.ID = m.Path
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *securityGroupResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m securityGroupModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	b, err := os.ReadFile(m.Path.ValueString())
	if errors.Is(err, fs.ErrNotExist) {
		resp.State.RemoveResource(ctx) // deleted out of band: Terraform plans to create it again
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("cannot read security group document", err.Error())
		return
	}
	var doc securityGroupDocument
	if err := json.Unmarshal(b, &doc); err != nil {
		resp.Diagnostics.AddError("security group document is not valid JSON", fmt.Sprintf("%s: %v", m.Path.ValueString(), err))
		return
	}
	m.ID = m.Path
	m.Name = types.StringValue(doc.Name)
	if doc.Description == nil {
		m.Description = types.StringNull()
	} else {
		m.Description = types.StringValue(*doc.Description)
	}
	if doc.IngressPorts == nil {
		doc.IngressPorts = []int64{}
	}
	ports, diags := types.ListValueFrom(ctx, types.Int64Type, doc.IngressPorts)
	resp.Diagnostics.Append(diags...)
	m.IngressPorts = ports
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *securityGroupResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m securityGroupModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.write(ctx, &m); err != nil {
		resp.Diagnostics.AddError("cannot write security group document", err.Error())
		return
	}
	m.ID = m.Path
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *securityGroupResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m securityGroupModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := os.Remove(m.Path.ValueString()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		resp.Diagnostics.AddError("cannot delete security group document", err.Error())
	}
}

// ImportState: `terraform import setpointtest_security_group.x /abs/path.json`.
func (r *securityGroupResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("path"), req.ID)...)
}
