// Package adapter speaks the platform adapter contract of SPEC §7 (docs/adapter-contract.md):
// JSON requests {"id","op","args"}, one per line on stdin, each answered by exactly one JSON
// line on stdout, {"id","ok":true,"result"} or {"id","ok":false,"error","detail"}.
package adapter

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"semafore.local/goadapter/protocol"
)

// Name and Version identify this implementation in `capabilities`.
const (
	Name    = "semafore-go"
	Version = "0.1.0"
)

// maxLine bounds one request line (a 1000-frame vector step list stays far below it).
const maxLine = 64 << 20

// Response is one answer line.
type Response struct {
	ID     json.RawMessage `json:"id"`
	OK     bool            `json:"ok"`
	Result any             `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Detail string          `json:"detail,omitempty"`
}

// Serve answers requests until in reaches EOF. It never exits on a bad request: garbage
// gets an error answer with id null, and the next line is read.
func Serve(in io.Reader, out io.Writer) error {
	a := New()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if err := enc.Encode(a.HandleLine(line)); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

type request struct {
	ID   json.RawMessage `json:"id"`
	Op   *string         `json:"op"`
	Args json.RawMessage `json:"args"`
}

// HandleLine answers one request line.
func (a *Adapter) HandleLine(line []byte) (resp Response) {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		var probe any
		if json.Unmarshal(line, &probe) == nil {
			return failure(nil, protocol.Malformed("request", "request is not a JSON object"))
		}
		return failure(nil, protocol.Malformed("request", "request line is not JSON"))
	}
	id := req.ID
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	if req.Op == nil {
		return failure(id, protocol.Malformed("op", "missing field op"))
	}
	var rawArgs any = map[string]any{} // a request without "args" has no arguments
	if len(req.Args) > 0 {
		if err := json.Unmarshal(req.Args, &rawArgs); err != nil {
			return failure(id, protocol.Malformed("args", "args is not JSON"))
		}
	}
	args, err := newArgs(rawArgs, "args")
	if err != nil {
		return failure(id, err)
	}
	defer func() {
		// A panic is a bug in this adapter: answer with a non-canonical name so the gate
		// reports a divergence with the stack, instead of dying mid-run.
		if p := recover(); p != nil {
			resp = Response{ID: id, Error: "InternalError", Detail: fmt.Sprintf("panic: %v\n%s", p, debug.Stack())}
		}
	}()
	result, err := a.Dispatch(*req.Op, args)
	if err != nil {
		return failure(id, err)
	}
	return Response{ID: id, OK: true, Result: result}
}

func failure(id json.RawMessage, err error) Response {
	if id == nil {
		id = json.RawMessage("null")
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return Response{ID: id, Error: "InternalError", Detail: err.Error()}
	}
	name, detail, field := pe.Name, pe.Detail, pe.Field
	if name == protocol.ErrExhausted {
		// The request scripted too few values: MalformedEnvelope naming the dr.init list
		// that ran out (docs/adapter-contract.md, dr.init), never a name outside SPEC §5.
		name = protocol.ErrMalformedEnvelope
		field = "args." + field + "s"
	}
	if field != "" {
		detail = fmt.Sprintf("%s (field: %s)", detail, field)
	}
	return Response{ID: id, Error: name, Detail: detail}
}
