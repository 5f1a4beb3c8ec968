package org.libchip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.libchip.demo.ChipDemo;

/** The demo program prints what the C example prints, and its numbers are the Rust API's. */
class ChipDemoTest {
    @TempDir
    Path tmp;

    /** The fixed inputs: the last layer (the conv head), the fixed fit photos, the cat photo. */
    private static List<String> args(Path fitFile) {
        List<String> a = new ArrayList<>();
        a.add(Reference.model().toString());
        try (Model m = Model.load(Reference.model())) {
            List<Layer> layers = m.layers();
            a.add(layers.get(layers.size() - 1).name());
        }
        a.add(fitFile.toString());
        a.add(Reference.photo().toString());
        Reference.fitPhotos().forEach(p -> a.add(p.toString()));
        return a;
    }

    private static String run(List<String> args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ChipDemo.run(args.toArray(new String[0]), new PrintStream(out, true, StandardCharsets.UTF_8));
        return out.toString(StandardCharsets.UTF_8);
    }

    private static void requireOrSkip(String what) {
        if (Reference.referenceRequired()) {
            fail(what);
        }
        assumeTrue(false, what);
    }

    @Test
    void programMatchesCExample() throws Exception {
        String c = System.getProperty("chip.c.example", "");
        if (c.isEmpty() || !Files.isExecutable(Path.of(c))) {
            requireOrSkip("the C example (-Dchip.c.example) was not found");
        }
        String got = run(args(tmp.resolve("java.chip")));
        String want = Reference.run(Path.of(c), args(tmp.resolve("c.chip")));
        assertEquals(want, got);
    }

    @Test
    void programMatchesCli() throws Exception {
        Path cli = Reference.cli();
        if (cli == null) {
            requireOrSkip("the chip tool was not found");
        }
        Path fitFile = tmp.resolve("fit.chip");
        String out = run(args(fitFile));
        Map<String, String[]> lines = new HashMap<>();
        for (String l : out.strip().split("\n")) {
            String[] f = l.strip().split(" ");
            lines.put(f[0].replace(":", ""), java.util.Arrays.copyOfRange(f, 1, f.length));
        }
        Reference.CliResult ref = Reference.explainTopK(cli, List.of(fitFile), Reference.photo(), tmp.resolve("cli"), 3);
        for (int k = 0; k < ref.classes().size(); k++) {
            String[] got = lines.get("top" + (k + 1));
            assertNotNull(got);
            assertEquals(String.valueOf(ref.classes().get(k).classId()), got[0]);
            assertEquals(ref.classes().get(k).probability(), Double.parseDouble(got[got.length - 1]), 1e-5);
        }
        Reference.CliMap m = ref.classes().get(0).layers().get(0);
        assertNotNull(m.box());
        assertEquals(m.box()[0] + " " + m.box()[1] + " " + m.box()[2] + " " + m.box()[3], String.join(" ", lines.get("box")));
        String[] map = lines.get("map"); // WxH sum S max M center C
        assertEquals(m.width() + "x" + m.height(), map[0]);
        double sum = 0;
        double max = 0;
        for (float v : m.data()) {
            sum += v;
            max = Math.max(max, v);
        }
        double center = m.data()[(m.height() / 2) * m.width() + m.width() / 2];
        assertTrue(max > 0, "the reference map is empty");
        // Printed with 7 significant digits.
        assertEquals(sum, Double.parseDouble(map[2]), 1e-5 * Math.max(1, Math.abs(sum)), "sum");
        assertEquals(max, Double.parseDouble(map[4]), 1e-5 * Math.max(1, max), "max");
        assertEquals(center, Double.parseDouble(map[6]), 1e-5 * Math.max(1, Math.abs(center)), "center");
    }

    @Test
    void programErrors() {
        List<String> a = List.of(tmp.resolve("none.onnx").toString(), "layer", tmp.resolve("x.chip").toString(), "photo.png", "a.png");
        ChipException e = assertThrows(ChipException.class, () -> run(a));
        assertEquals(Status.IO, e.status());
        assertTrue(e.getMessage().contains("none.onnx"));
        assertThrows(IllegalArgumentException.class, () -> run(List.of("a", "b")));
    }
}
