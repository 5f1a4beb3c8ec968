// chipdemo: libchip from Go. Loads a model, fits one layer on a few photos, saves and reloads the
// fit, explains a photo, prints its top classes, the box and a summary of the map.
//
//	chipdemo <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>...
//
// It follows the recipe of the C example (examples/c/main.c) and prints the same lines: the classes
// fitted are the 3 most probable classes of the photo to explain; gates 32, seed 0, other fit
// options default; explain with top_k 3 and maps at the original size; the map printed is the top-1
// class's; its sum is accumulated in double in row-major order.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"example.com/libchip/chip"
)

func main() {
	if len(os.Args) < 6 {
		fmt.Fprintf(os.Stderr, "usage: %s <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>...\n", os.Args[0])
		os.Exit(2)
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chipdemo:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) < 5 {
		return fmt.Errorf("want <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>..., got %d arguments", len(args))
	}
	modelPath, layer, fitPath, photo, fitPhotos := args[0], args[1], args[2], args[3], args[4:]
	fmt.Fprintf(out, "libchip %s\n", chip.Version())
	model, err := chip.LoadModel(modelPath, nil)
	if err != nil {
		return err
	}
	defer model.Close()
	classes, err := model.ClassCount()
	if err != nil {
		return err
	}
	input, err := model.InputSize()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "model: %d classes, input %dx%d\n", classes, input.Width, input.Height)

	// The classes to fit: the photo's three most probable.
	img, err := model.PreprocessFile(photo)
	if err != nil {
		return err
	}
	probs, err := model.Predict(img.Data, 1)
	if err != nil {
		return err
	}
	order := make([]int, classes)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return probs[0][order[a]] > probs[0][order[b]] })

	opts := chip.DefaultFitOptions()
	opts.Gates, opts.Seed, opts.Classes = 32, 0, order[:3]
	fit, err := model.FitLayer(layer, chip.Files(fitPhotos...), &opts)
	if err != nil {
		return err
	}
	err = fit.Save(fitPath)
	fit.Close()
	if err != nil {
		return err
	}
	loaded, err := chip.LoadLayerFit(fitPath)
	if err != nil {
		return err
	}
	defer loaded.Close()
	explainer, err := chip.NewExplainer(model, loaded)
	if err != nil {
		return err
	}
	defer explainer.Close()

	eo := chip.DefaultExplainOptions()
	eo.TopK = 3
	x, err := explainer.Explain(chip.Files(photo), &eo)
	if err != nil {
		return err
	}
	defer x.Close()
	explained, err := x.Classes(0)
	if err != nil {
		return err
	}
	for k, c := range explained {
		label, err := model.ClassLabel(c.Class)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "top%d: %d %s %.6f\n", k+1, c.Class, label, float64(c.Probability))
	}
	// No box is all corners -1.
	box, err := x.Box(0, 0, 0)
	if err != nil {
		return err
	}
	if box.Found() {
		fmt.Fprintf(out, "box: %d %d %d %d\n", box.X1, box.Y1, box.X2, box.Y2)
	} else {
		fmt.Fprintf(out, "box: none\n")
	}
	m, err := x.Map(0, 0, 0)
	if err != nil {
		return err
	}
	var mx float32
	for _, v := range m.Data {
		mx = max(mx, v)
	}
	fmt.Fprintf(out, "map: %dx%d sum %.6e max %.6e center %.6e\n", m.Width, m.Height, m.Sum(), float64(mx),
		float64(m.At(m.Width/2, m.Height/2)))
	return nil
}
