package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"
)

// Received is one request a Receiver took.
type Received struct {
	Time time.Time       `json:"time"`
	Path string          `json:"path"`
	Body json.RawMessage `json:"body"`
}

// Receiver is a webhook endpoint for the lab (`lockstep notify-receiver`)
// and for people trying a configuration: it accepts any POST or PUT,
// keeps the last Keep (default 100) and lists them on GET as JSON. OnReceive,
// if set, sees each as it arrives.
type Receiver struct {
	Keep      int
	OnReceive func(Received)

	mu  sync.Mutex
	got []Received
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		rc.mu.Lock()
		b, _ := json.Marshal(rc.got)
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		b, err := io.ReadAll(io.LimitReader(r.Body, maxResponseBytes))
		if err != nil {
			http.Error(w, "read: "+err.Error(), http.StatusBadRequest)
			return
		}
		if !json.Valid(b) {
			b, _ = json.Marshal(string(b))
		}
		got := Received{Time: time.Now(), Path: r.URL.Path, Body: b}
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		keep := rc.Keep
		if keep <= 0 {
			keep = 100
		}
		if len(rc.got) > keep {
			rc.got = rc.got[len(rc.got)-keep:]
		}
		rc.mu.Unlock()
		if rc.OnReceive != nil {
			rc.OnReceive(got)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "GET lists, POST receives", http.StatusMethodNotAllowed)
	}
}
