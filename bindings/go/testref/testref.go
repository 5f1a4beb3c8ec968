// Package testref holds what the tests of the binding and of the examples share: the fixed
// inputs (model, photos, fit parameters), the reference results of the `chip` command line tool (the Rust API) on the same
// fit file, an NPY reader and a second, independent implementation of map localization.
package testref

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The fixed fit: 16 photos x 32 gates, three cat classes (tabby 281, tiger cat 282, Egyptian cat 285),
// on the model's last candidate layer (the conv head) and, for Refined CHIP, on ShallowLayer (14x14);
// the explained photo is a cat.
var (
	ShallowLayer = "/_blocks.10/Add_output_0"
	FitClasses   = []int{281, 282, 285}
	FitGates     = 32
	FitSeed      = uint64(0)
	Photo        = "data/images/skimage/chelsea.png"
	fitPhotos    = []string{
		"skimage/astronaut.png", "skimage/camera.png", "skimage/chelsea.png", "skimage/coffee.png",
		"skimage/hubble_deep_field.jpg", "skimage/motorcycle_left.png", "skimage/rocket.jpg",
		"mpl/grace_hopper.jpg",
		"aib/0.jpg", "aib/1.jpg", "aib/2.jpg", "aib/3.jpg", "aib/4.jpg", "aib/5.jpg", "aib/6.jpg", "aib/7.jpg",
	}
)

// RepoRoot is the libchip checkout holding this module: the first parent of the working directory
// with Cargo.toml and data/models.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isFile(filepath.Join(dir, "Cargo.toml")) && isDir(filepath.Join(dir, "data", "models")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no libchip checkout with data/models above the working directory (run scripts/setup.sh)")
		}
		dir = parent
	}
}

func isFile(p string) bool { st, err := os.Stat(p); return err == nil && st.Mode().IsRegular() }
func isDir(p string) bool  { st, err := os.Stat(p); return err == nil && st.IsDir() }

// ModelPath is the model the tests use (CHIP_MODEL overrides it).
func ModelPath(root string) string {
	if p := os.Getenv("CHIP_MODEL"); p != "" {
		return p
	}
	return filepath.Join(root, "data", "models", "efficientnet_lite0.onnx")
}

// FitPhotos are the photos of the fixed fit.
func FitPhotos(root string) []string {
	out := make([]string, len(fitPhotos))
	for i, p := range fitPhotos {
		out[i] = filepath.Join(root, "data", "images", filepath.FromSlash(p))
	}
	return out
}

// LabelsFile is the model's class list, one name per line.
func LabelsFile(root string) string {
	return filepath.Join(filepath.Dir(ModelPath(root)), "imagenet_classes.txt")
}

// CLI is the `chip` command line tool: CHIP_CLI, else a build in the cargo target folder.
func CLI(root string) (string, error) {
	if p := os.Getenv("CHIP_CLI"); p != "" {
		if !isFile(p) {
			return "", fmt.Errorf("CHIP_CLI=%s is not a file", p)
		}
		return p, nil
	}
	targets := []string{filepath.Join(root, "target")}
	if t := os.Getenv("CARGO_TARGET_DIR"); t != "" {
		targets = append([]string{t}, targets...)
	}
	for _, t := range targets {
		for _, prof := range []string{"release", "debug"} {
			if p := filepath.Join(t, prof, "chip"); isFile(p) {
				return p, nil
			}
		}
	}
	return "", errors.New("the chip command line tool was not found: set CHIP_CLI or build it (cargo build --bin chip)")
}

// CLIMap is one map of the command line tool's output.
type CLIMap struct {
	Box           *[4]int // nil for no box
	Width, Height int
	Data          []float32
}

// CLIClass is one explained class.
type CLIClass struct {
	Class       int
	Probability float32
	Layers      []CLIMap
	Refined     *CLIMap
}

// CLIResult is the tool's explanation of one image.
type CLIResult struct {
	Width, Height int
	Top           []struct {
		Class       int     `json:"class"`
		Probability float32 `json:"probability"`
	}
	Classes []CLIClass
}

type jsonMap struct {
	Box *[4]int `json:"box"`
	Map *string `json:"map"`
}

// ExplainTopK runs `chip explain --top-k k --json --save-map` on one image with fit files.
func ExplainTopK(cli, model string, fits []string, image, outDir string, k int) (*CLIResult, error) {
	return explain(cli, model, fits, image, outDir, []string{"--top-k", strconv.Itoa(k)})
}

// Explain runs `chip explain --json --save-map` on one image with fit files and reads the maps back.
// classes empty explains the top-1 class.
func Explain(cli, model string, fits []string, image, outDir string, classes []int, refined bool) (*CLIResult, error) {
	var args []string
	if len(classes) > 0 {
		ids := make([]string, len(classes))
		for i, c := range classes {
			ids[i] = strconv.Itoa(c)
		}
		args = append(args, "--class", strings.Join(ids, ","))
	}
	if refined {
		args = append(args, "--refined")
	}
	return explain(cli, model, fits, image, outDir, args)
}

func explain(cli, model string, fits []string, image, outDir string, extra []string) (*CLIResult, error) {
	args := []string{"explain", "--model", model, "--out", outDir, "--json", "--save-map"}
	for _, f := range fits {
		args = append(args, "--fit", f)
	}
	args = append(append(args, extra...), image)
	cmd := exec.Command(cli, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", cli, strings.Join(args, " "), err, stderr.String())
	}
	var rec struct {
		Width, Height int
		Top           json.RawMessage `json:"top"`
		Classes       []struct {
			Class       int       `json:"class"`
			Probability float32   `json:"probability"`
			Layers      []jsonMap `json:"layers"`
			Refined     *jsonMap  `json:"refined"`
		} `json:"classes"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &rec); err != nil {
		return nil, fmt.Errorf("chip explain output %q: %v", out, err)
	}
	res := &CLIResult{Width: rec.Width, Height: rec.Height}
	if err := json.Unmarshal(rec.Top, &res.Top); err != nil {
		return nil, err
	}
	read := func(m jsonMap) (CLIMap, error) {
		if m.Map == nil {
			return CLIMap{}, errors.New("chip explain wrote no map file")
		}
		data, shape, err := ReadNPY(*m.Map)
		if err != nil {
			return CLIMap{}, err
		}
		if len(shape) != 2 {
			return CLIMap{}, fmt.Errorf("%s: shape %v is not 2-D", *m.Map, shape)
		}
		// No box is null or all four corners -1.
		if m.Box != nil && *m.Box == [4]int{-1, -1, -1, -1} {
			m.Box = nil
		}
		return CLIMap{Box: m.Box, Width: shape[1], Height: shape[0], Data: data}, nil
	}
	for _, c := range rec.Classes {
		cc := CLIClass{Class: c.Class, Probability: c.Probability}
		for _, l := range c.Layers {
			m, err := read(l)
			if err != nil {
				return nil, err
			}
			cc.Layers = append(cc.Layers, m)
		}
		if c.Refined != nil {
			m, err := read(*c.Refined)
			if err != nil {
				return nil, err
			}
			cc.Refined = &m
		}
		res.Classes = append(res.Classes, cc)
	}
	return res, nil
}

var npyDescr = regexp.MustCompile(`'descr':\s*'([^']*)'`)
var npyShape = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)

// ReadNPY reads a little-endian float32 C-order .npy file.
func ReadNPY(path string) ([]float32, []int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, nil, fmt.Errorf("%s: not an NPY file", path)
	}
	var hlen, start int
	switch b[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, nil, fmt.Errorf("%s: truncated", path)
		}
		hlen, start = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, nil, fmt.Errorf("%s: NPY version %d", path, b[6])
	}
	if start+hlen > len(b) {
		return nil, nil, fmt.Errorf("%s: truncated header", path)
	}
	header := string(b[start : start+hlen])
	if d := npyDescr.FindStringSubmatch(header); d == nil || d[1] != "<f4" {
		return nil, nil, fmt.Errorf("%s: dtype is not <f4: %s", path, header)
	}
	if strings.Contains(header, "'fortran_order': True") {
		return nil, nil, fmt.Errorf("%s: Fortran order", path)
	}
	s := npyShape.FindStringSubmatch(header)
	if s == nil {
		return nil, nil, fmt.Errorf("%s: no shape: %s", path, header)
	}
	var shape []int
	n := 1
	for _, f := range strings.Split(s[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: shape %q", path, s[1])
		}
		shape = append(shape, v)
		n *= v
	}
	body := b[start+hlen:]
	if len(body) != 4*n {
		return nil, nil, fmt.Errorf("%s: %d data bytes for shape %v", path, len(body), shape)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return data, shape, nil
}

// MaxAbsDiff is the largest |a-b| (Inf when the lengths differ).
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		if v := math.Abs(float64(a[i]) - float64(b[i])); v > d || math.IsNaN(v) {
			d = v
		}
	}
	return d
}

// Localize is a second implementation of the method's localization: threshold the map at
// t * max, keep the largest 8-connected region, return its bounding box (inclusive corners).
func Localize(data []float32, width, height int, t float32) (box [4]int, found bool) {
	var mx float32
	for _, v := range data {
		if v != v {
			return box, false
		}
		if v > mx {
			mx = v
		}
	}
	if !(mx > 0) {
		return box, false
	}
	cut := t * mx
	seen := make([]bool, len(data))
	best := 0
	stack := []int{}
	for start := range data {
		if seen[start] || data[start] < cut {
			continue
		}
		seen[start] = true
		stack = append(stack[:0], start)
		size := 0
		x1, y1, x2, y2 := width, height, -1, -1
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size++
			x, y := p%width, p/width
			x1, y1, x2, y2 = min(x1, x), min(y1, y), max(x2, x), max(y2, y)
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if nx < 0 || ny < 0 || nx >= width || ny >= height {
						continue
					}
					q := ny*width + nx
					if !seen[q] && data[q] >= cut {
						seen[q] = true
						stack = append(stack, q)
					}
				}
			}
		}
		if size > best {
			best = size
			box = [4]int{x1, y1, x2, y2}
		}
	}
	return box, true
}

// Run runs the command line tool and reports its stderr on failure.
func Run(cli string, args ...string) error {
	cmd := exec.Command(cli, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", cli, strings.Join(args, " "), err, stderr.String())
	}
	return nil
}
