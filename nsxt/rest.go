package nsxt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// get GETs a Policy API path and returns the body of a 200 answer; any
// other is an *APIError.
func (c *Client) get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	u := *c.tr.managers[0]
	u.Path = strings.TrimSuffix(u.Path, "/") + "/policy/api/v1" + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if c.cfg.Username != "" && c.cfg.ClientCert == "" {
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("nsxt: get %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("nsxt: get %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &APIError{Op: "get " + path, Message: strings.TrimSpace(string(body))}
		var nsx struct {
			Code    int64  `json:"error_code"`
			Message string `json:"error_message"`
		}
		if json.Unmarshal(body, &nsx) == nil && nsx.Message != "" {
			e.Code, e.Message = nsx.Code, nsx.Message
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			e.Kind = ErrNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			e.Kind = ErrUnauthorized
		default:
			e.Kind = ErrUnavailable
		}
		return nil, e
	}
	return body, nil
}

// getObject GETs one object as plain JSON values.
func (c *Client) getObject(ctx context.Context, path string) (map[string]any, error) {
	body, err := c.get(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("nsxt: get %s: %w", path, err)
	}
	return m, nil
}

// revision GETs one object and returns its _revision.
func (c *Client) revision(ctx context.Context, path string) (int64, error) {
	body, err := c.get(ctx, path, nil)
	if err != nil {
		return 0, err
	}
	var obj struct {
		Revision *int64 `json:"_revision"`
	}
	if err := json.Unmarshal(body, &obj); err != nil || obj.Revision == nil {
		return 0, fmt.Errorf("nsxt: get %s: no _revision in the answer", path)
	}
	return *obj.Revision, nil
}

// list GETs every page of a collection. Unlike the search index, the
// answer holds every write made before it.
func (c *Client) list(ctx context.Context, path string) ([]map[string]any, error) {
	var out []map[string]any
	q := url.Values{"page_size": {"1000"}}
	for {
		body, err := c.get(ctx, path, q)
		if err != nil {
			return nil, err
		}
		var page struct {
			Results []map[string]any `json:"results"`
			Cursor  string           `json:"cursor"`
		}
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&page); err != nil {
			return nil, fmt.Errorf("nsxt: list %s: %w", path, err)
		}
		out = append(out, page.Results...)
		if page.Cursor == "" || len(page.Results) == 0 {
			return out, nil
		}
		q.Set("cursor", page.Cursor)
	}
}
