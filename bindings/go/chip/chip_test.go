package chip_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"example.com/libchip/chip"
	"example.com/libchip/testref"
)

// One model and one fit (the fixed parameters of testref) shared by the tests.
var (
	root     string
	model    *chip.Model
	fit      *chip.LayerFit // the last layer
	fitPath  string
	shallow  *chip.LayerFit // testref.ShallowLayer, for Refined CHIP
	shalPath string
	lastName string
	tmp      string
	progress []chip.Progress
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if root, err = testref.RepoRoot(); err != nil {
		println(err.Error())
		return 1
	}
	if tmp, err = os.MkdirTemp("", "chip-go-test"); err != nil {
		println(err.Error())
		return 1
	}
	defer os.RemoveAll(tmp)
	if model, err = chip.LoadModel(testref.ModelPath(root), nil); err != nil {
		println("loading the model:", err.Error())
		return 1
	}
	defer model.Close()
	layers, err := model.Layers()
	if err != nil || len(layers) == 0 {
		println("listing layers:", err)
		return 1
	}
	lastName = layers[len(layers)-1].Name
	opts := chip.DefaultFitOptions()
	opts.Gates, opts.Seed, opts.Classes = testref.FitGates, testref.FitSeed, testref.FitClasses
	var mu sync.Mutex
	opts.Progress = func(p chip.Progress) bool {
		mu.Lock()
		progress = append(progress, p)
		mu.Unlock()
		return true
	}
	if fit, err = model.FitLayer(lastName, chip.Files(testref.FitPhotos(root)...), &opts); err != nil {
		println("fitting:", err.Error())
		return 1
	}
	defer fit.Close()
	fitPath = filepath.Join(tmp, "last.chip")
	if err = fit.Save(fitPath); err != nil {
		println("saving the fit:", err.Error())
		return 1
	}
	opts.Progress = nil
	if shallow, err = model.FitLayer(testref.ShallowLayer, chip.Files(testref.FitPhotos(root)...), &opts); err != nil {
		println("fitting:", err.Error())
		return 1
	}
	defer shallow.Close()
	shalPath = filepath.Join(tmp, "shallow.chip")
	if err = shallow.Save(shalPath); err != nil {
		println("saving the fit:", err.Error())
		return 1
	}
	return m.Run()
}

// must unwraps a result; a failure panics, which fails the running test with its stack.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// wantStatus checks err is a *chip.Error with the status and a message mentioning each of words.
func wantStatus(t *testing.T, err error, want chip.Status, words ...string) {
	t.Helper()
	var ce *chip.Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a *chip.Error with status %v, got %v", want, err)
	}
	if ce.Status != want {
		t.Fatalf("want status %v, got %v (%s)", want, ce.Status, ce.Message)
	}
	if !errors.Is(err, &chip.Error{Status: want}) {
		t.Fatalf("errors.Is does not match status %v", want)
	}
	for _, w := range words {
		if !strings.Contains(ce.Message, w) {
			t.Fatalf("message %q does not mention %q", ce.Message, w)
		}
	}
}

func TestVersion(t *testing.T) {
	if chip.ABIVersion() != chip.HeaderABIVersion {
		t.Fatalf("library ABI %d, header ABI %d", chip.ABIVersion(), chip.HeaderABIVersion)
	}
	v := chip.Version()
	cargo := must(os.ReadFile(filepath.Join(root, "Cargo.toml")))
	if !strings.Contains(string(cargo), "\nversion = \""+v+"\"") {
		t.Fatalf("library version %q is not the crate's", v)
	}
	if chip.StatusCancelled.String() == chip.StatusOK.String() {
		t.Fatal("status descriptions do not differ")
	}
}

func TestModelInfo(t *testing.T) {
	if n := must(model.ClassCount()); n != 1000 {
		t.Fatalf("%d classes", n)
	}
	if s := must(model.InputSize()); s != (chip.Size{Width: 224, Height: 224}) {
		t.Fatalf("input size %+v", s)
	}
	// Labels against the model's class list read here.
	f := must(os.Open(testref.LabelsFile(root)))
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan() && i < 1000; i++ {
		if i%97 != 0 && i != 285 {
			continue
		}
		if got := must(model.ClassLabel(i)); got != strings.TrimSpace(sc.Text()) {
			t.Fatalf("class %d: label %q, file %q", i, got, sc.Text())
		}
	}
	_, err := model.ClassLabel(1000)
	wantStatus(t, err, chip.StatusInvalidArgument)
	_, err = model.ClassLabel(-1)
	wantStatus(t, err, chip.StatusInvalidArgument)
}

func TestLayers(t *testing.T) {
	layers := must(model.Layers())
	seen := map[string]bool{}
	for _, l := range layers {
		if l.Name == "" || l.Channels <= 0 || l.Height <= 0 || l.Width <= 0 || seen[l.Name] {
			t.Fatalf("bad layer %+v", l)
		}
		seen[l.Name] = true
	}
	last := layers[len(layers)-1]
	// EfficientNet-Lite0's head: 1280 channels at 1/32 of 224.
	if last.Channels != 1280 || last.Height != 7 || last.Width != 7 {
		t.Fatalf("last layer %+v", last)
	}
	if layers[0].Height <= last.Height {
		t.Fatalf("first layer %+v is not finer than the last", layers[0])
	}
}

func TestFit(t *testing.T) {
	if name := must(fit.LayerName()); name != lastName {
		t.Fatalf("fit of %q, asked %q", name, lastName)
	}
	k := must(fit.ChannelCount())
	if k != 1280 || must(fit.ClassCount()) != 1000 {
		t.Fatalf("fit shape %d x %d", must(fit.ClassCount()), k)
	}
	solved := map[int]bool{}
	for _, c := range testref.FitClasses {
		solved[c] = true
		row := must(fit.WeightsRow(c))
		nz := 0
		for _, v := range row {
			if v != 0 {
				nz++
			}
		}
		if nz == 0 || nz == k {
			t.Fatalf("class %d: %d of %d weights nonzero (want sparse, not empty)", c, nz, k)
		}
	}
	for _, c := range []int{0, 283, 999} {
		for _, v := range must(fit.WeightsRow(c)) {
			if v != 0 {
				t.Fatalf("unsolved class %d has a nonzero weight", c)
			}
		}
	}
	_, err := fit.WeightsRow(1000)
	wantStatus(t, err, chip.StatusInvalidArgument)
}

func TestProgressReports(t *testing.T) {
	kinds := map[chip.ProgressKind]chip.Progress{}
	for _, p := range progress {
		if p.Done > p.Total || p.Total <= 0 {
			t.Fatalf("report %+v", p)
		}
		if prev, ok := kinds[p.Kind]; ok && p.Done < prev.Done {
			t.Fatalf("%v went back from %d to %d", p.Kind, prev.Done, p.Done)
		}
		kinds[p.Kind] = p
	}
	want := map[chip.ProgressKind]int{
		// Image reports count fitted rows: each photo and its 2 mosaics (the default).
		chip.ProgressImages:     3 * len(testref.FitPhotos(root)),
		chip.ProgressSuffixRuns: 0, // batching decides the count; it must finish
		chip.ProgressClasses:    len(testref.FitClasses),
	}
	for k, total := range want {
		last, ok := kinds[k]
		if !ok {
			t.Fatalf("no %v report in %d reports", k, len(progress))
		}
		if last.Done != last.Total || (total > 0 && last.Total != total) {
			t.Fatalf("%v ended at %d/%d, want %d", k, last.Done, last.Total, total)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	loaded := must(chip.LoadLayerFit(fitPath))
	defer loaded.Close()
	if must(loaded.LayerName()) != lastName {
		t.Fatal("layer name lost")
	}
	for _, c := range append([]int{0}, testref.FitClasses...) {
		a, b := must(fit.WeightsRow(c)), must(loaded.WeightsRow(c))
		if testref.MaxAbsDiff(a, b) != 0 {
			t.Fatalf("class %d: weights changed through save/load", c)
		}
	}
	// Saving over a folder fails and leaves nothing behind.
	bad := filepath.Join(tmp, "no-such-dir", "x.chip")
	wantStatus(t, fit.Save(bad), chip.StatusIO)
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("a failed save left a file")
	}
}

// The fit made through the binding equals the command line tool's fit with the same parameters.
func TestFitMatchesCLI(t *testing.T) {
	cli := cliOrSkip(t)
	list := filepath.Join(tmp, "photos.txt")
	if err := os.WriteFile(list, []byte(strings.Join(testref.FitPhotos(root), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "cli.chip")
	runCLI(t, cli, "fit", "--model", testref.ModelPath(root), "--layer", lastName, "--images", list,
		"--out", out, "--gates", "32", "--seed", "0", "--classes", "281,282,285")
	ref := must(chip.LoadLayerFit(out))
	defer ref.Close()
	for _, c := range testref.FitClasses {
		if d := testref.MaxAbsDiff(must(fit.WeightsRow(c)), must(ref.WeightsRow(c))); d > 1e-5 {
			t.Fatalf("class %d: binding and CLI fits differ by %g", c, d)
		}
	}
}

func newExplainer(t *testing.T) *chip.Explainer {
	t.Helper()
	e := must(chip.NewExplainer(model, fit))
	t.Cleanup(func() { e.Close() })
	return e
}

func photo() string { return filepath.Join(root, testref.Photo) }

// The explanation of the fixed photo equals the Rust API's (the `chip` tool on the same fit files).
func TestExplainMatchesCLI(t *testing.T) {
	cli := cliOrSkip(t)
	e := must(chip.NewExplainer(model, shallow, fit))
	defer e.Close()
	if names := must(e.LayerNames()); len(names) != 2 || names[0] != testref.ShallowLayer || names[1] != lastName {
		t.Fatalf("explainer layers %v", names)
	}
	opts := chip.DefaultExplainOptions()
	opts.Refined = true
	x := must(e.Explain(chip.Files(photo()), &opts))
	defer x.Close()
	ref, err := testref.Explain(cli, testref.ModelPath(root), []string{shalPath, fitPath}, photo(), filepath.Join(tmp, "cli-explain"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	size := must(x.ImageSize(0))
	w, h := size.Width, size.Height
	if w != ref.Width || h != ref.Height {
		t.Fatalf("image size %+v, CLI %dx%d", size, ref.Width, ref.Height)
	}
	top := must(x.Top(0))
	if len(top) != len(ref.Top) {
		t.Fatalf("%d top classes, CLI %d", len(top), len(ref.Top))
	}
	for i := range top {
		if top[i].Class != ref.Top[i].Class || math.Abs(float64(top[i].Probability-ref.Top[i].Probability)) > 1e-5 {
			t.Fatalf("top %d: %+v, CLI %+v", i, top[i], ref.Top[i])
		}
	}
	classes := must(x.Classes(0))
	if len(classes) != 1 || len(ref.Classes) != 1 || classes[0].Class != ref.Classes[0].Class || classes[0].Class != top[0].Class {
		t.Fatalf("explained %+v, CLI %+v, top %+v", classes, ref.Classes, top[0])
	}
	if n := must(x.LayerCount()); n != 2 || len(ref.Classes[0].Layers) != 2 {
		t.Fatalf("%d layers, CLI %d", n, len(ref.Classes[0].Layers))
	}
	for _, layer := range []int{0, 1, chip.Refined} {
		m := must(x.Map(0, 0, layer))
		var want testref.CLIMap
		if layer == chip.Refined {
			want = *ref.Classes[0].Refined
		} else {
			want = ref.Classes[0].Layers[layer]
		}
		if m.Width != want.Width || m.Height != want.Height || m.Width != w || m.Height != h {
			t.Fatalf("layer %d: map %dx%d, CLI %dx%d", layer, m.Width, m.Height, want.Width, want.Height)
		}
		d := testref.MaxAbsDiff(m.Data, want.Data)
		if d > 1e-5 {
			t.Fatalf("layer %d: maps differ by %g", layer, d)
		}
		if m.Max() <= 0 {
			t.Fatalf("layer %d: map is empty", layer)
		}
		box := must(x.Box(0, 0, layer))
		if !box.Found() || want.Box == nil {
			t.Fatalf("layer %d: box %+v (CLI %v)", layer, box, want.Box)
		}
		if [4]int{box.X1, box.Y1, box.X2, box.Y2} != *want.Box {
			t.Fatalf("layer %d: box %+v, CLI %v", layer, box, *want.Box)
		}
		t.Logf("layer %d: class %d p=%.4f box %+v sum %.4f max %.4f, max |binding-CLI| %.3g", layer, classes[0].Class, classes[0].Probability, box, m.Sum(), m.Max(), d)
	}
}

// Refined CHIP is the point-wise product of the first and last layer's maps, and needs two layers.
func TestRefinedIsProductOfMaps(t *testing.T) {
	e := must(chip.NewExplainer(model, shallow, fit))
	defer e.Close()
	opts := chip.DefaultExplainOptions()
	opts.Refined = true
	x := must(e.Explain(chip.Files(photo()), &opts))
	defer x.Close()
	a, b, r := must(x.Map(0, 0, 0)), must(x.Map(0, 0, 1)), must(x.Map(0, 0, chip.Refined))
	prod := make([]float32, len(a.Data))
	for i := range prod {
		prod[i] = a.Data[i] * b.Data[i]
	}
	if d := testref.MaxAbsDiff(prod, r.Data); d > 1e-5*float64(a.Max()*b.Max()) {
		t.Fatalf("refined differs from the product of the maps by %g", d)
	}
	// Without the option there is no refined map.
	plain := must(e.Explain(chip.Files(photo()), nil))
	defer plain.Close()
	_, err := plain.Map(0, 0, chip.Refined)
	wantStatus(t, err, chip.StatusInvalidArgument)
	// One layer is not enough.
	one := newExplainer(t)
	_, err = one.Explain(chip.Files(photo()), &opts)
	wantStatus(t, err, chip.StatusInvalidArgument)
}

// Files, encoded bytes and preprocessed tensors give the same explanation.
func TestExplainInputsAgree(t *testing.T) {
	e := newExplainer(t)
	opts := chip.DefaultExplainOptions()
	opts.Classes = []int{285, 281}
	fromFile := must(e.Explain(chip.Files(photo()), &opts))
	defer fromFile.Close()
	data := must(os.ReadFile(photo()))
	fromBytes := must(e.Explain(chip.Encoded(data), &opts))
	defer fromBytes.Close()
	img := must(model.PreprocessFile(photo()))
	if len(img.Data) != 3*224*224 {
		t.Fatalf("preprocessed %d floats", len(img.Data))
	}
	fromTensor := must(e.Explain(chip.Tensor(img.Data, 1, []chip.Size{img.Size}), &opts))
	defer fromTensor.Close()
	ref := must(fromFile.Map(0, 1, 0))
	for name, x := range map[string]*chip.Explanation{"bytes": fromBytes, "tensor": fromTensor} {
		cls := must(x.Classes(0))
		if len(cls) != 2 || cls[0].Class != 285 || cls[1].Class != 281 {
			t.Fatalf("%s: classes %+v", name, cls)
		}
		for idx := 0; idx < 2; idx++ {
			a, b := must(fromFile.Map(0, idx, 0)), must(x.Map(0, idx, 0))
			if d := testref.MaxAbsDiff(a.Data, b.Data); d > 1e-6 || a.Width != b.Width {
				t.Fatalf("%s, class %d: maps differ by %g", name, cls[idx].Class, d)
			}
		}
	}
	if ref.Size != img.Size {
		t.Fatalf("map %+v, photo %+v", ref.Size, img.Size)
	}
	// Maps at the input size when asked.
	opts.OriginalSize = false
	small := must(e.Explain(chip.Files(photo()), &opts))
	defer small.Close()
	if m := must(small.Map(0, 0, 0)); m.Width != 224 || m.Height != 224 {
		t.Fatalf("input-size map %dx%d", m.Width, m.Height)
	}
	// The same bytes from the preprocessing helper.
	enc := must(model.PreprocessEncoded(data))
	if testref.MaxAbsDiff(enc.Data, img.Data) != 0 {
		t.Fatal("preprocessing a file and its bytes differ")
	}
}

// Probabilities agree with the model's own predictions and are sorted into the top list.
func TestPredictionsAndTop(t *testing.T) {
	e := newExplainer(t)
	x := must(e.Explain(chip.Files(photo(), filepath.Join(root, "data/images/skimage/coffee.png")), nil))
	defer x.Close()
	if n := must(x.ImageCount()); n != 2 {
		t.Fatalf("%d images", n)
	}
	for i, path := range []string{photo(), filepath.Join(root, "data/images/skimage/coffee.png")} {
		img := must(model.PreprocessFile(path))
		pred := must(model.Predict(img.Data, 1))
		probs := must(x.Probabilities(i))
		if d := testref.MaxAbsDiff(pred[0], probs); d > 1e-5 {
			t.Fatalf("image %d: predictions differ by %g", i, d)
		}
		sum := 0.0
		best := 0
		for c, p := range probs {
			sum += float64(p)
			if p > probs[best] {
				best = c
			}
		}
		if math.Abs(sum-1) > 1e-3 {
			t.Fatalf("image %d: probabilities sum to %g", i, sum)
		}
		top := must(x.Top(i))
		if len(top) != 5 || top[0].Class != best {
			t.Fatalf("image %d: top %+v, argmax %d", i, top, best)
		}
		for r := 1; r < len(top); r++ {
			if top[r].Probability > top[r-1].Probability || top[r].Probability != probs[top[r].Class] {
				t.Fatalf("image %d: top %+v not sorted or not the probabilities", i, top)
			}
		}
	}
	// The photos are a cat and an espresso (ImageNet 285 Egyptian cat, 967 espresso).
	if top := must(x.Top(0)); top[0].Class != 285 {
		t.Fatalf("chelsea: top-1 %d", top[0].Class)
	}
	if top := must(x.Top(1)); top[0].Class != 967 {
		t.Fatalf("coffee: top-1 %d", top[0].Class)
	}
	_, err := x.Probabilities(2)
	wantStatus(t, err, chip.StatusInvalidArgument)
}

// The box equals chip.Localize on the map and a second implementation of the localization.
func TestLocalization(t *testing.T) {
	e := newExplainer(t)
	for _, th := range []float32{0.25, 0.5} {
		opts := chip.DefaultExplainOptions()
		opts.Threshold = th
		x := must(e.Explain(chip.Files(photo()), &opts))
		m := must(x.Map(0, 0, 0))
		box := must(x.Box(0, 0, 0))
		if !box.Found() {
			t.Fatalf("t=%v: no box", th)
		}
		if lb := must(chip.Localize(m, th)); lb != box {
			t.Fatalf("t=%v: Localize %+v, explanation %+v", th, lb, box)
		}
		rb, rfound := testref.Localize(m.Data, m.Width, m.Height, th)
		if !rfound || rb != [4]int{box.X1, box.Y1, box.X2, box.Y2} {
			t.Fatalf("t=%v: reference box %v, libchip %+v", th, rb, box)
		}
		x.Close()
	}
	// Planted: two blobs, the larger one wins; an all-zero map has no box.
	m := &chip.Map{Size: chip.Size{Width: 10, Height: 8}, Data: make([]float32, 80)}
	for y := 1; y <= 2; y++ {
		for x := 1; x <= 2; x++ {
			m.Data[y*10+x] = 2
		}
	}
	for y := 4; y <= 6; y++ {
		for x := 5; x <= 8; x++ {
			m.Data[y*10+x] = 1
		}
	}
	b := must(chip.Localize(m, 0.4))
	if !b.Found() || b != (chip.Box{X1: 5, Y1: 4, X2: 8, Y2: 6}) {
		t.Fatalf("planted box %+v", b)
	}
	three := chip.Size{Width: 3, Height: 3}
	if b := must(chip.Localize(&chip.Map{Size: three, Data: make([]float32, 9)}, 0.25)); b != chip.NoBox || b.Found() {
		t.Fatalf("box %+v in an all-zero map", b)
	}
	_, err := chip.Localize(&chip.Map{Size: three, Data: make([]float32, 8)}, 0.25)
	wantStatus(t, err, chip.StatusInvalidArgument)
	// IoU of inclusive boxes: 5x5 overlap of two 10x10 boxes = 25 / 175.
	iou := must(chip.IoU(chip.Box{X1: 0, Y1: 0, X2: 9, Y2: 9}, chip.Box{X1: 5, Y1: 5, X2: 14, Y2: 14}))
	if math.Abs(iou-25.0/175.0) > 1e-12 {
		t.Fatalf("IoU %v", iou)
	}
	if iou := must(chip.IoU(b, b)); iou != 1 {
		t.Fatalf("self IoU %v", iou)
	}
	// No box overlaps nothing, itself included; other negative corners are refused.
	for _, pair := range [][2]chip.Box{{chip.NoBox, b}, {b, chip.NoBox}, {chip.NoBox, chip.NoBox}} {
		if iou := must(chip.IoU(pair[0], pair[1])); iou != 0 {
			t.Fatalf("IoU%v = %v", pair, iou)
		}
	}
	_, err = chip.IoU(chip.Box{X1: -2, Y1: 0, X2: 3, Y2: 3}, b)
	wantStatus(t, err, chip.StatusInvalidArgument)
}

func TestCancel(t *testing.T) {
	calls := 0
	opts := chip.DefaultFitOptions()
	opts.Gates, opts.Classes = 8, []int{285}
	opts.Progress = func(p chip.Progress) bool {
		calls++
		return false
	}
	f, err := model.FitLayer(lastName, chip.Files(testref.FitPhotos(root)[:4]...), &opts)
	wantStatus(t, err, chip.StatusCancelled)
	if f != nil || calls != 1 {
		t.Fatalf("fit %v after %d callbacks", f, calls)
	}
	// Cancelling in a later stage too.
	calls = 0
	opts.Progress = func(p chip.Progress) bool {
		calls++
		return p.Kind != chip.ProgressSuffixRuns
	}
	_, err = model.FitLayer(lastName, chip.Files(testref.FitPhotos(root)[:4]...), &opts)
	wantStatus(t, err, chip.StatusCancelled)
	// A panicking callback cancels the fit and the panic reaches the caller.
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		opts.Progress = func(chip.Progress) bool { panic("boom") }
		model.FitLayer(lastName, chip.Files(testref.FitPhotos(root)[:4]...), &opts)
		t.Fatal("no panic")
	}()
	// The model is still usable.
	if _, err := model.ClassCount(); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	missing := filepath.Join(tmp, "missing.onnx")
	_, err := chip.LoadModel(missing, nil)
	wantStatus(t, err, chip.StatusIO, "missing.onnx")

	_, err = chip.LoadModelBytes([]byte("not an onnx model"), nil)
	if chip.StatusOf(err) != chip.StatusModel {
		t.Fatalf("garbage model: %v", err)
	}

	_, err = model.FitLayer("no/such/layer", chip.Files(testref.FitPhotos(root)[:2]...), nil)
	wantStatus(t, err, chip.StatusUnknownLayer, "no/such/layer")

	opts := chip.DefaultFitOptions()
	opts.Gates, opts.Classes = 4, []int{1000}
	_, err = model.FitLayer(lastName, chip.Files(testref.FitPhotos(root)[:2]...), &opts)
	wantStatus(t, err, chip.StatusInvalidArgument, "1000")
	opts.Classes = []int{-3}
	_, err = model.FitLayer(lastName, chip.Files(testref.FitPhotos(root)[:2]...), &opts)
	wantStatus(t, err, chip.StatusInvalidArgument)

	_, err = model.FitLayer(lastName, chip.Files(filepath.Join(tmp, "nope.png")), nil)
	if s := chip.StatusOf(err); s != chip.StatusIO && s != chip.StatusImage {
		t.Fatalf("missing photo: %v", err)
	}
	if !strings.Contains(err.Error(), "nope.png") {
		t.Fatalf("message does not name the photo: %v", err)
	}

	_, err = chip.LoadLayerFit(filepath.Join(tmp, "missing.chip"))
	wantStatus(t, err, chip.StatusIO, "missing.chip")

	// A truncated fit file.
	good := must(os.ReadFile(fitPath))
	cut := filepath.Join(tmp, "cut.chip")
	if err := os.WriteFile(cut, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = chip.LoadLayerFit(cut)
	wantStatus(t, err, chip.StatusFitFile)

	// A fit of another model: the same network with another doc string (protobuf field 6) is
	// another file, so another fingerprint.
	onnx := must(os.ReadFile(testref.ModelPath(root)))
	other := must(chip.LoadModelBytes(append(onnx, 0x32, 0x05, 'o', 't', 'h', 'e', 'r'), nil))
	defer other.Close()
	_, err = chip.NewExplainer(other, fit)
	wantStatus(t, err, chip.StatusFitMismatch)

	e := newExplainer(t)
	eo := chip.DefaultExplainOptions()
	eo.Threshold = float32(math.NaN())
	_, err = e.Explain(chip.Files(photo()), &eo)
	wantStatus(t, err, chip.StatusInvalidArgument)
	eo = chip.DefaultExplainOptions()
	eo.Classes = []int{5000}
	_, err = e.Explain(chip.Files(photo()), &eo)
	wantStatus(t, err, chip.StatusInvalidArgument, "5000")

	_, err = e.Explain(chip.Encoded([]byte("not an image")), nil)
	wantStatus(t, err, chip.StatusImage)
	_, err = e.Explain(chip.Files(filepath.Join(tmp, "nope.png")), nil)
	if s := chip.StatusOf(err); s != chip.StatusIO && s != chip.StatusImage {
		t.Fatalf("missing photo: %v", err)
	}
	_, err = e.Explain(chip.Tensor(make([]float32, 10), 1, nil), nil)
	wantStatus(t, err, chip.StatusInvalidArgument)
	nan := make([]float32, 3*224*224)
	nan[7] = float32(math.NaN())
	_, err = e.Explain(chip.Tensor(nan, 1, nil), nil)
	wantStatus(t, err, chip.StatusNonFinite)

	x := must(e.Explain(chip.Files(photo()), nil))
	_, err = x.Map(0, 1, 0)
	wantStatus(t, err, chip.StatusInvalidArgument)
	_, err = x.Map(0, 0, 1)
	wantStatus(t, err, chip.StatusInvalidArgument)
	_, err = x.Box(-1, 0, 0)
	wantStatus(t, err, chip.StatusInvalidArgument)

	// Closed handles are errors, not crashes; Close twice is fine.
	x.Close()
	x.Close()
	_, err = x.Map(0, 0, 0)
	wantStatus(t, err, chip.StatusNullPointer)
	e.Close()
	_, err = e.Explain(chip.Files(photo()), nil)
	wantStatus(t, err, chip.StatusNullPointer)
}

// Explainers keep their own model reference, and may be used from many goroutines at once.
func TestExplainerOutlivesModelAndConcurrency(t *testing.T) {
	m := must(chip.LoadModel(testref.ModelPath(root), nil))
	e := must(chip.NewExplainer(m, fit))
	defer e.Close()
	m.Close()
	want := must(e.Explain(chip.Files(photo()), nil))
	defer want.Close()
	ref := must(want.Map(0, 0, 0))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, err := e.Explain(chip.Files(photo()), nil)
			if err != nil {
				errs <- err
				return
			}
			defer x.Close()
			m, err := x.Map(0, 0, 0)
			if err == nil && testref.MaxAbsDiff(m.Data, ref.Data) > 1e-6 {
				err = errors.New("concurrent explanation differs")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func cliOrSkip(t *testing.T) string {
	t.Helper()
	cli, err := testref.CLI(root)
	if err != nil {
		if os.Getenv("CHIP_REQUIRE_REFERENCE") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return cli
}

func runCLI(t *testing.T, cli string, args ...string) {
	t.Helper()
	if err := testref.Run(cli, args...); err != nil {
		t.Fatal(err)
	}
}

// Statistics of two shards, merged and solved, give the fit of all their photos: W identical.
// Mosaics are tiled within one call's images, so only without them.
func TestStatsShardsEqualOneFit(t *testing.T) {
	photos := testref.FitPhotos(root)[:6]
	opts := chip.DefaultFitOptions()
	opts.Gates, opts.Seed, opts.Classes, opts.Mosaics = 16, 3, testref.FitClasses, 0
	whole := must(model.FitLayer(lastName, chip.Files(photos...), &opts))
	defer whole.Close()

	a := must(model.CollectStats(lastName, chip.Files(photos[:2]...), &opts))
	defer a.Close()
	// The second shard as encoded bytes: the image source must not matter.
	var enc [][]byte
	for _, p := range photos[2:] {
		enc = append(enc, must(os.ReadFile(p)))
	}
	b := must(model.CollectStats(lastName, chip.Encoded(enc...), &opts))
	defer b.Close()
	if na, nb := must(a.ImageCount()), must(b.ImageCount()); na != 2 || nb != 4 {
		t.Fatalf("shards hold %d and %d images, want 2 and 4", na, nb)
	}
	if name := must(b.LayerName()); name != lastName {
		t.Fatalf("statistics of %q, collected at %q", name, lastName)
	}
	// Through a file, as shards collected elsewhere would come.
	path := filepath.Join(tmp, "b.stats")
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded := must(chip.LoadStats(path))
	defer loaded.Close()
	if err := a.Merge(loaded); err != nil {
		t.Fatal(err)
	}
	if n := must(a.ImageCount()); n != 6 {
		t.Fatalf("merged statistics hold %d images", n)
	}
	merged := must(model.Solve(a, &opts))
	defer merged.Close()
	for _, c := range append([]int{0}, testref.FitClasses...) {
		w, m := must(whole.WeightsRow(c)), must(merged.WeightsRow(c))
		if d := testref.MaxAbsDiff(w, m); d != 0 {
			t.Fatalf("class %d: merged shards and one fit differ by %g", c, d)
		}
	}
	if nz := testref.MaxAbsDiff(must(merged.WeightsRow(285)), make([]float32, 1280)); nz == 0 {
		t.Fatal("the merged fit is all zero")
	}

	// Statistics of another gate seed do not merge, and the failed merge changes nothing.
	opts.Seed = 4
	other := must(model.CollectStats(lastName, chip.Files(photos[:1]...), &opts))
	defer other.Close()
	wantStatus(t, a.Merge(other), chip.StatusFitMismatch, "seed")
	if n := must(a.ImageCount()); n != 6 {
		t.Fatalf("a failed merge left %d images", n)
	}
	wantStatus(t, a.Merge(a), chip.StatusInvalidArgument)
	_, err := chip.LoadStats(filepath.Join(tmp, "missing.stats"))
	wantStatus(t, err, chip.StatusIO, "missing.stats")
	_, err = chip.LoadStats(fitPath)
	if s := chip.StatusOf(err); s != chip.StatusFitFile {
		t.Fatalf("a fit file read as statistics: %v", err)
	}
	wantStatus(t, b.Save(filepath.Join(tmp, "no-such-dir", "x.stats")), chip.StatusIO)
	b.Close()
	_, err = b.ImageCount()
	wantStatus(t, err, chip.StatusNullPointer)
}

// A fit on preprocessed tensors equals the fit on the files they came from.
func TestFitTensorEqualsFiles(t *testing.T) {
	photos := testref.FitPhotos(root)[:3]
	opts := chip.DefaultFitOptions()
	opts.Gates, opts.Classes = 8, []int{285}
	var data []float32
	for _, p := range photos {
		data = append(data, must(model.PreprocessFile(p)).Data...)
	}
	a := must(model.FitLayer(lastName, chip.Files(photos...), &opts))
	defer a.Close()
	b := must(model.FitLayer(lastName, chip.Tensor(data, len(photos), nil), &opts))
	defer b.Close()
	if d := testref.MaxAbsDiff(must(a.WeightsRow(285)), must(b.WeightsRow(285))); d != 0 {
		t.Fatalf("tensor and file fits differ by %g", d)
	}
	// A zeroed descriptor has no kind and is refused.
	_, err := model.FitLayer(lastName, chip.Images{}, &opts)
	wantStatus(t, err, chip.StatusInvalidArgument)
	_, err = model.FitLayer(lastName, chip.Tensor(data, 2, nil), &opts)
	wantStatus(t, err, chip.StatusInvalidArgument)
}

// A preprocessing spec as ModelOptions.Preprocess: its keys are "given" in Model.Preprocess, the
// tensor follows it (the sidecar's x = (p - 127) / 128 re-normalised here to p / 255), the
// probabilities move; an unknown key fails the load naming it.
func TestPreprocessSpec(t *testing.T) {
	type described struct {
		Spec        map[string]any    `json:"spec"`
		Sources     map[string]string `json:"sources"`
		Fingerprint string            `json:"fingerprint"`
	}
	parse := func(m *chip.Model) described {
		var d described
		text := must(m.Preprocess())
		if err := json.Unmarshal([]byte(text), &d); err != nil {
			t.Fatalf("Preprocess is not JSON (%v): %s", err, text)
		}
		return d
	}
	side := parse(model)
	if side.Sources["mean"] != "sidecar" || len(side.Fingerprint) != 64 {
		t.Fatalf("sidecar model: %+v", side)
	}
	given := must(chip.LoadModel(testref.ModelPath(root), &chip.ModelOptions{Preprocess: `{"mean": [0, 0, 0], "std": [255, 255, 255]}`}))
	defer given.Close()
	d := parse(given)
	if d.Sources["mean"] != "given" || d.Sources["std"] != "given" || d.Sources["scale"] != "sidecar" {
		t.Fatalf("sources %v", d.Sources)
	}
	if d.Fingerprint == side.Fingerprint {
		t.Fatal("the spec did not change the fingerprint")
	}
	photo := testref.FitPhotos(root)[0]
	a := must(model.PreprocessFile(photo))
	b := must(given.PreprocessFile(photo))
	worst := 0.0
	for i := range a.Data {
		worst = math.Max(worst, math.Abs(float64(b.Data[i])-(float64(a.Data[i])*128+127)/255))
	}
	if worst > 1e-5 {
		t.Fatalf("the spec's tensor differs from the hand-normalised one by %g", worst)
	}
	pa := must(model.Predict(a.Data, 1))[0]
	pb := must(given.Predict(b.Data, 1))[0]
	moved := 0.0
	for i := range pa {
		moved = math.Max(moved, math.Abs(float64(pa[i]-pb[i])))
	}
	if moved < 1e-3 {
		t.Fatalf("the spec did not change the probabilities (%g)", moved)
	}
	_, err := chip.LoadModel(testref.ModelPath(root), &chip.ModelOptions{Preprocess: `{"mean": 0.5, "colour": "RGB"}`})
	wantStatus(t, err, chip.StatusInvalidArgument, "chip_model_options.preprocess", "unknown key 'colour'")
}
