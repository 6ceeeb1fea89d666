// goracle: the Go pieces this project's tctl renderers imitate, behind a line protocol, so the
// Python test suite can compare against real Go. Written for this project (not Teleport code):
// fmt %q, strconv.IsPrint, time.Format(RFC3339), encoding/json's Encoder (SetIndent, HTML
// escaping on), ghodss/yaml.Marshal (json.Marshal -> yaml.v2), and text/tabwriter under the
// column budget documented in ../../../shared/spec/discovery-nodes.md §3 (asciitable facts).
//
// stdin: one JSON request per line; stdout: one JSON response per line. Byte strings travel as
// base64 ([]byte in encoding/json), so invalid UTF-8 crosses intact.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/ghodss/yaml"
)

type instant struct {
	Sec  int64 `json:"sec"`
	Nsec int64 `json:"nsec"`
}

func (i instant) time() time.Time { return time.Unix(i.Sec, i.Nsec).UTC() }

type runIn struct {
	Time      instant `json:"time"`
	ExitCode  int64   `json:"exit_code"`
	Output    []byte  `json:"output"`
	APIError  []byte  `json:"api_error"`
	IsFailure bool    `json:"is_failure"`
}

// rowIn is one report row as the Python side holds it.
type rowIn struct {
	Cloud         string   `json:"cloud"`
	Region        []byte   `json:"region"`
	IsOnline      bool     `json:"is_online"`
	Expiry        *instant `json:"expiry"`
	Run           *runIn   `json:"run"`
	UserTaskID    []byte   `json:"user_task_id"`
	UserTaskIssue []byte   `json:"user_task_issue"`
	InstanceID    []byte   `json:"instance_id"`
	AccountID     []byte   `json:"account_id"`
	VMID          []byte   `json:"vm_id"`
	VMName        []byte   `json:"vm_name"`
	ResourceGroup []byte   `json:"resource_group"`
	ResourceID    []byte   `json:"resource_id"`
}

// The output shape (spec §3, "JSON output"): field order, omitempty as documented there.
type runResult struct {
	APIError  string    `json:"api_error"`
	ExitCode  int64     `json:"exit_code"`
	Output    string    `json:"output"`
	Time      time.Time `json:"time"`
	IsFailure bool      `json:"is_failure"`
}

type awsInfo struct {
	InstanceID string `json:"instance_id"`
	AccountID  string `json:"account_id"`
}

type azureInfo struct {
	VMID           string `json:"vm_id"`
	VMName         string `json:"vm_name,omitempty"`
	SubscriptionID string `json:"subscription_id,omitempty"`
	ResourceGroup  string `json:"resource_group,omitempty"`
	ResourceID     string `json:"resource_id,omitempty"`
}

type nodeOut struct {
	Region        string     `json:"region"`
	IsOnline      bool       `json:"is_online"`
	Expiry        *time.Time `json:"expiry,omitempty"`
	RunResult     *runResult `json:"run_result,omitempty"`
	UserTaskID    string     `json:"user_task_id,omitempty"`
	UserTaskIssue string     `json:"user_task_issue,omitempty"`
	AWS           *awsInfo   `json:"aws,omitempty"`
	Azure         *azureInfo `json:"azure,omitempty"`
}

func (r rowIn) out() nodeOut {
	o := nodeOut{Region: string(r.Region), IsOnline: r.IsOnline, UserTaskID: string(r.UserTaskID),
		UserTaskIssue: string(r.UserTaskIssue)}
	if r.Expiry != nil {
		t := r.Expiry.time()
		o.Expiry = &t
	}
	if r.Run != nil {
		o.RunResult = &runResult{APIError: string(r.Run.APIError), ExitCode: r.Run.ExitCode,
			Output: string(r.Run.Output), Time: r.Run.Time.time(), IsFailure: r.Run.IsFailure}
	}
	if r.Cloud == "aws" {
		o.AWS = &awsInfo{InstanceID: string(r.InstanceID), AccountID: string(r.AccountID)}
	} else {
		o.Azure = &azureInfo{VMID: string(r.VMID), VMName: string(r.VMName),
			SubscriptionID: string(r.AccountID), ResourceGroup: string(r.ResourceGroup),
			ResourceID: string(r.ResourceID)}
	}
	return o
}

type request struct {
	Op        string     `json:"op"`
	S         []byte     `json:"s"`
	At        instant    `json:"at"`
	Rows      []rowIn    `json:"rows"`
	Strings   [][]byte   `json:"strings"`
	Columns   [][]byte   `json:"columns"`
	Cells     [][][]byte `json:"cells"`
	Truncated []byte     `json:"truncated"`
	Width     int        `json:"width"`
}

type response struct {
	Out   []byte `json:"out"`
	Err   string `json:"err,omitempty"`
	Panic string `json:"panic,omitempty"`
}

// jsonEncode is encoding/json's Encoder as a CLI writer sets it up: 4-space indent, HTML escaping on.
func jsonEncode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "    ")
	err := enc.Encode(v)
	return buf.Bytes(), err
}

// yamlDocuments writes one ghodss/yaml document per value, "---\n" between them, stopping at the
// first error with what was written so far (a writer streaming documents to stdout).
func yamlDocuments(values []any) ([]byte, error) {
	var buf bytes.Buffer
	for i, v := range values {
		if i > 0 {
			buf.WriteString("---\n")
		}
		data, err := yaml.Marshal(v)
		if err != nil {
			return buf.Bytes(), err
		}
		buf.Write(data)
	}
	return buf.Bytes(), nil
}

// table lays out rows under the column budget (spec §3) and writes them through text/tabwriter
// (minwidth 5, tabwidth 0, padding 1, ' ', no flags). Panics where a negative limit slices.
func table(columns [][]byte, rows [][][]byte, truncated []byte, width int) []byte {
	maxColWidth := (width - 16) / (len(columns) - 1)
	limits := make([]int, len(columns))
	total := 0
	for i, title := range columns {
		limits[i] = len(title)
		if bytes.Equal(title, truncated) {
			continue
		}
		for _, row := range rows {
			limits[i] = max(limits[i], len(row[i]))
		}
		if limits[i] > maxColWidth {
			limits[i] = maxColWidth
			total += limits[i] + 4
		} else {
			total += limits[i] + 1
		}
	}
	for i, title := range columns {
		if bytes.Equal(title, truncated) {
			limits[i] = max(width-total-len("... "), 0)
		}
	}
	cut := func(i int, cell []byte) string {
		if limits[i] == 0 || len(cell) <= limits[i] {
			return string(cell)
		}
		return string(cell[:limits[i]]) + "..."
	}
	widths := make([]int, len(columns))
	body := make([][]string, len(rows))
	for i, title := range columns {
		widths[i] = len(title)
	}
	for r, row := range rows {
		body[r] = make([]string, len(columns))
		for i := range columns {
			body[r][i] = cut(i, row[i])
			widths[i] = max(widths[i], len(body[r][i]))
		}
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 5, 0, 1, ' ', 0)
	line := func(cells []string) {
		for _, c := range cells {
			fmt.Fprintf(tw, "%v\t", c)
		}
		fmt.Fprint(tw, "\n")
	}
	head, dashes := make([]string, len(columns)), make([]string, len(columns))
	for i, title := range columns {
		head[i], dashes[i] = string(title), strings.Repeat("-", widths[i])
	}
	line(head)
	line(dashes)
	for _, cells := range body {
		line(cells)
	}
	tw.Flush()
	return buf.Bytes()
}

// printRanges lists the runes strconv.IsPrint accepts as [lo, hi] pairs, with the Unicode version.
func printRanges() []byte {
	var ranges [][2]rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !strconv.IsPrint(r) {
			continue
		}
		if n := len(ranges); n > 0 && ranges[n-1][1] == r-1 {
			ranges[n-1][1] = r
		} else {
			ranges = append(ranges, [2]rune{r, r})
		}
	}
	out, _ := json.Marshal(map[string]any{"unicode": unicode.Version, "ranges": ranges})
	return out
}

func serve(req request) (resp response) {
	defer func() {
		if p := recover(); p != nil {
			resp = response{Panic: fmt.Sprint(p)}
		}
	}()
	var err error
	switch req.Op {
	case "quote":
		resp.Out = []byte(fmt.Sprintf("%q", string(req.S)))
	case "rfc3339":
		resp.Out = []byte(req.At.time().Format(time.RFC3339))
	case "rfc3339nano":
		resp.Out = []byte(req.At.time().Format(time.RFC3339Nano))
	case "json_strings":
		strs := make([]string, len(req.Strings))
		for i, s := range req.Strings {
			strs[i] = string(s)
		}
		resp.Out, err = jsonEncode(strs)
	case "nodes_json":
		rows := make([]nodeOut, len(req.Rows))
		for i, r := range req.Rows {
			rows[i] = r.out()
		}
		resp.Out, err = jsonEncode(rows)
	case "nodes_yaml":
		values := make([]any, len(req.Rows))
		for i, r := range req.Rows {
			values[i] = r.out()
		}
		resp.Out, err = yamlDocuments(values)
	case "table":
		resp.Out = table(req.Columns, req.Cells, req.Truncated, req.Width)
	case "print_ranges":
		resp.Out = printRanges()
	case "version":
		resp.Out = []byte(fmt.Sprintf("%s unicode %s", runtimeVersion(), unicode.Version))
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	if err != nil {
		resp.Err = err.Error()
	}
	return resp
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for {
		line, err := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var req request
			if jerr := json.Unmarshal(line, &req); jerr != nil {
				_ = enc.Encode(response{Err: "bad request: " + jerr.Error()})
			} else {
				_ = enc.Encode(serve(req))
			}
			_ = out.Flush()
		}
		if err != nil {
			return
		}
	}
}
