package harbor

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/configure"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/ldap"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
)

// LDAPConfig is Harbor's LDAP authentication setting. ConfigureLDAP
// sends only the fields that are set: an empty optional field, the
// search password above all, leaves what Harbor holds as it is.
type LDAPConfig struct {
	URL            string // ldaps://ldap.example.com:636
	SearchDN       string
	SearchPassword string
	BaseDN         string
	Filter         string // (objectClass=person)
	UID            string // uid or sAMAccountName; uid when empty
	// Scope of the user search: "base", "onelevel" or "subtree" (the
	// default when empty).
	Scope      string
	VerifyCert bool
	// Group settings, for LDAP groups as project members.
	GroupBaseDN     string
	GroupFilter     string
	GroupNameAttr   string // cn
	GroupAdminDN    string // members of this group are Harbor administrators
	GroupMembership string // memberof
}

// LDAP search scopes and the numbers Harbor knows them by.
var ldapScopes = map[string]int64{"base": 0, "onelevel": 1, "subtree": 2}

// String never shows the search password.
func (l LDAPConfig) String() string {
	pw := ""
	if l.SearchPassword != "" {
		pw = "--- REDACTED ---"
	}
	return fmt.Sprintf("harbor.LDAPConfig{URL: %q, SearchDN: %q, SearchPassword: %q, BaseDN: %q, UID: %q, Scope: %q}",
		l.URL, l.SearchDN, pw, l.BaseDN, l.UID, l.Scope)
}

// GoString makes %#v as safe as %v.
func (l LDAPConfig) GoString() string { return l.String() }

// validate returns every problem of l at once as a *ValidationError.
func (l LDAPConfig) validate() error {
	verr := ValidationError{Object: "harbor.LDAPConfig"}
	u, err := url.Parse(l.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		verr.Add("ldap.url", l.URL, "must be an ldap:// or ldaps:// URL")
	}
	if l.BaseDN == "" {
		verr.Add("ldap.baseDN", "", "required")
	}
	if _, ok := ldapScopes[l.Scope]; !ok && l.Scope != "" {
		verr.Add("ldap.scope", l.Scope, "must be base, onelevel or subtree")
	}
	return verr.Err()
}

// scope is Harbor's number for l.Scope; subtree when empty.
func (l LDAPConfig) scope() int64 {
	if l.Scope == "" {
		return ldapScopes["subtree"]
	}
	return ldapScopes[l.Scope]
}

// nonEmpty points at s, or is nil for an empty s so that it is not sent.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// OIDCConfig is Harbor's OpenID Connect authentication setting.
// ConfigureOIDC sends only the fields that are set: an empty optional
// field, the client secret above all, leaves what Harbor holds as it is.
type OIDCConfig struct {
	Name         string
	Endpoint     string // the issuer, https://login.example.com
	ClientID     string
	ClientSecret string
	Scope        []string // openid is added when missing
	VerifyCert   bool
	AutoOnboard  bool
	UserClaim    string
	GroupsClaim  string
	AdminGroup   string
}

// String never shows the client secret.
func (o OIDCConfig) String() string {
	sec := ""
	if o.ClientSecret != "" {
		sec = "--- REDACTED ---"
	}
	return fmt.Sprintf("harbor.OIDCConfig{Name: %q, Endpoint: %q, ClientID: %q, ClientSecret: %q, Scope: %q}",
		o.Name, o.Endpoint, o.ClientID, sec, o.Scope)
}

// GoString makes %#v as safe as %v.
func (o OIDCConfig) GoString() string { return o.String() }

// validate returns every problem of o at once as a *ValidationError.
func (o OIDCConfig) validate() error {
	verr := ValidationError{Object: "harbor.OIDCConfig"}
	if o.Name == "" {
		verr.Add("oidc.name", "", "required")
	}
	if u, err := url.Parse(o.Endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
		verr.Add("oidc.endpoint", o.Endpoint, "must be an https URL")
	}
	if o.ClientID == "" {
		verr.Add("oidc.clientID", "", "required")
	}
	return verr.Err()
}

// ConfigureLDAP writes the LDAP settings; with setAuthMode it also makes
// LDAP the authentication mode (Harbor refuses that once users other than
// admin exist in its database). Settings left empty are not sent, so an
// empty SearchPassword keeps the one Harbor holds.
func (c *Client) ConfigureLDAP(ctx context.Context, l LDAPConfig, setAuthMode bool) error {
	if err := l.validate(); err != nil {
		return err
	}
	cfg := &models.Configurations{
		LdapURL: ptr(l.URL), LdapSearchDn: nonEmpty(l.SearchDN), LdapSearchPassword: nonEmpty(l.SearchPassword),
		LdapBaseDn: ptr(l.BaseDN), LdapFilter: nonEmpty(l.Filter), LdapUID: ptr(orDefault(l.UID, "uid")),
		LdapScope: ptr(l.scope()), LdapVerifyCert: &l.VerifyCert,
		LdapGroupBaseDn: nonEmpty(l.GroupBaseDN), LdapGroupSearchFilter: nonEmpty(l.GroupFilter),
		LdapGroupAttributeName: nonEmpty(l.GroupNameAttr), LdapGroupAdminDn: nonEmpty(l.GroupAdminDN),
		LdapGroupMembershipAttribute: nonEmpty(l.GroupMembership),
	}
	if setAuthMode {
		cfg.AuthMode = ptr("ldap_auth")
	}
	_, err := c.api.Configure.UpdateConfigurations(ctx, configure.NewUpdateConfigurationsParams().WithConfigurations(cfg))
	return apiError("configure LDAP", err)
}

// ConfigureOIDC writes the OIDC settings; with setAuthMode it also makes
// OIDC the authentication mode. Settings left empty are not sent, so an
// empty ClientSecret keeps the one Harbor holds.
func (c *Client) ConfigureOIDC(ctx context.Context, o OIDCConfig, setAuthMode bool) error {
	if err := o.validate(); err != nil {
		return err
	}
	scope := o.Scope
	if !containsString(scope, "openid") {
		scope = append([]string{"openid"}, scope...)
	}
	cfg := &models.Configurations{OIDCName: ptr(o.Name), OIDCEndpoint: ptr(o.Endpoint), OIDCClientID: ptr(o.ClientID),
		OIDCClientSecret: nonEmpty(o.ClientSecret), OIDCScope: ptr(strings.Join(scope, ",")), OIDCVerifyCert: &o.VerifyCert,
		OIDCAutoOnboard: &o.AutoOnboard, OIDCUserClaim: nonEmpty(o.UserClaim), OIDCGroupsClaim: nonEmpty(o.GroupsClaim),
		OIDCAdminGroup: nonEmpty(o.AdminGroup)}
	if setAuthMode {
		cfg.AuthMode = ptr("oidc_auth")
	}
	_, err := c.api.Configure.UpdateConfigurations(ctx, configure.NewUpdateConfigurationsParams().WithConfigurations(cfg))
	return apiError("configure OIDC", err)
}

// AuthMode is Harbor's authentication mode: db_auth, ldap_auth,
// oidc_auth, uaa_auth or http_auth.
func (c *Client) AuthMode(ctx context.Context) (string, error) {
	res, err := c.api.Configure.GetConfigurations(ctx, configure.NewGetConfigurationsParams())
	if err != nil {
		return "", apiError("get configurations", err)
	}
	if res.Payload.AuthMode == nil {
		return "", nil
	}
	return res.Payload.AuthMode.Value, nil
}

// PingLDAP asks Harbor to reach and bind to an LDAP server with l. It
// returns Harbor's verdict and message; err is for a failed request.
func (c *Client) PingLDAP(ctx context.Context, l LDAPConfig) (bool, string, error) {
	if err := l.validate(); err != nil {
		return false, "", err
	}
	res, err := c.api.Ldap.PingLdap(ctx, ldap.NewPingLdapParams().WithLdapconf(&models.LdapConf{
		LdapURL: l.URL, LdapSearchDn: l.SearchDN, LdapSearchPassword: l.SearchPassword, LdapBaseDn: l.BaseDN,
		LdapFilter: l.Filter, LdapUID: orDefault(l.UID, "uid"), LdapScope: l.scope(), LdapVerifyCert: l.VerifyCert,
		LdapConnectionTimeout: 5}))
	if err != nil {
		return false, "", apiError("ping LDAP "+l.URL, err)
	}
	return res.Payload.Success, res.Payload.Message, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
