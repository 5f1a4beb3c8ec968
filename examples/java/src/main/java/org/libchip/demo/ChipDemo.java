package org.libchip.demo;

import java.io.PrintStream;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;
import org.libchip.Box;
import org.libchip.Chip;
import org.libchip.ChipException;
import org.libchip.ChipMap;
import org.libchip.ClassProbability;
import org.libchip.ExplainOptions;
import org.libchip.Explainer;
import org.libchip.Explanation;
import org.libchip.FitOptions;
import org.libchip.Images;
import org.libchip.LayerFit;
import org.libchip.Model;
import org.libchip.Prepared;
import org.libchip.Size;

/**
 * libchip from Java: loads a model, fits one layer on a few photos, saves and reloads the fit,
 * explains a photo, prints its top classes, the box and a summary of the map.
 *
 * <pre>ChipDemo &lt;model.onnx&gt; &lt;layer&gt; &lt;fit file to write&gt; &lt;photo to explain&gt; &lt;fit photo&gt;...</pre>
 *
 * It follows the recipe of the C example (examples/c/main.c) and prints the same lines: the classes
 * fitted are the 3 most probable classes of the photo to explain; gates 32, seed 0, other fit options
 * default; explain with top_k 3 and maps at the original size; the map printed is the top-1 class's;
 * its sum is accumulated in double in row-major order.
 */
public final class ChipDemo {
    private ChipDemo() {}

    public static void main(String[] args) {
        if (args.length < 5) {
            System.err.println("usage: ChipDemo <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>...");
            System.exit(2);
        }
        try {
            run(args, System.out);
        } catch (ChipException e) {
            System.err.println("ChipDemo: " + e.getMessage() + " (" + e.status() + ")");
            System.exit(1);
        }
    }

    public static void run(String[] args, PrintStream out) {
        if (args.length < 5) {
            throw new IllegalArgumentException("want <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>...");
        }
        Path photo = Path.of(args[3]);
        List<Path> fitPhotos = Arrays.stream(args, 4, args.length).map(Path::of).toList();
        out.println("libchip " + Chip.version());
        try (Model model = Model.load(Path.of(args[0]))) {
            int classes = model.classCount();
            Size size = model.inputSize();
            out.println("model: " + classes + " classes, input " + size.width() + "x" + size.height());

            // The classes to fit: the photo's three most probable.
            Prepared img = model.preprocess(photo);
            float[] probs = model.predict(img.data(), 1)[0];
            int[] top3 = IntStream.range(0, classes).boxed()
                    .sorted(Comparator.comparingDouble((Integer c) -> probs[c]).reversed())
                    .limit(3).mapToInt(Integer::intValue).toArray();

            FitOptions opts = new FitOptions().gates(32).seed(0).classes(top3);
            Path fitPath = Path.of(args[2]);
            try (LayerFit fit = model.fitLayer(args[1], Images.files(fitPhotos), opts)) {
                fit.save(fitPath);
            }
            try (LayerFit loaded = LayerFit.load(fitPath);
                    Explainer explainer = Explainer.create(model, loaded);
                    Explanation x = explainer.explain(Images.files(photo), new ExplainOptions().topK(3))) {
                List<ClassProbability> explained = x.classes(0);
                for (int k = 0; k < explained.size(); k++) {
                    ClassProbability c = explained.get(k);
                    out.println("top" + (k + 1) + ": " + c.classId() + " " + model.classLabel(c.classId()) + " "
                            + fixed6(c.probability()));
                }
                // No box is all corners -1.
                Box b = x.box(0, 0, 0);
                out.println(b.found() ? "box: " + b.x1() + " " + b.y1() + " " + b.x2() + " " + b.y2() : "box: none");
                ChipMap m = x.map(0, 0, 0);
                float max = 0;
                for (float v : m.data()) {
                    max = Math.max(max, v);
                }
                out.println("map: " + m.width() + "x" + m.height() + " sum " + sci6(m.sum()) + " max " + sci6(max)
                        + " center " + sci6(m.at(m.width() / 2, m.height() / 2)));
            }
        }
    }

    // C's printf rounds the exact binary value; BigDecimal does the same (String.format may not).

    /** printf("%.6f"). */
    static String fixed6(double v) {
        return new BigDecimal(v).setScale(6, RoundingMode.HALF_EVEN).toPlainString();
    }

    /** printf("%.6e") for finite values. */
    static String sci6(double v) {
        if (v == 0) {
            return (1 / v < 0 ? "-" : "") + "0.000000e+00";
        }
        BigDecimal d = new BigDecimal(v).round(new MathContext(7, RoundingMode.HALF_EVEN));
        String digits = d.unscaledValue().abs().toString();
        digits = (digits + "000000").substring(0, 7);
        int exp = d.precision() - d.scale() - 1;
        return (d.signum() < 0 ? "-" : "") + digits.charAt(0) + "." + digits.substring(1) + "e" + (exp < 0 ? "-" : "+")
                + (Math.abs(exp) < 10 ? "0" : "") + Math.abs(exp);
    }
}
