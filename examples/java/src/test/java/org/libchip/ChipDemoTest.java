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
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.libchip.demo.ChipDemo;

/** The demo program's output equals the Rust API's results (the chip tool on the fit files it saved). */
class ChipDemoTest {
    @TempDir
    Path tmp;

    private static String run(String... args) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ChipDemo.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return out.toString(StandardCharsets.UTF_8);
    }

    /** "key ..." lines by key: "top1", "layer0", "layer0 box", "layer0 size", "layer0 at X Y". */
    private static Map<String, String[]> parse(String out) {
        Map<String, String[]> m = new HashMap<>();
        for (String line : out.strip().split("\n")) {
            String[] f = line.strip().split("\\s+");
            if (f.length >= 5 && f[1].equals("at")) {
                m.put(f[0] + " at " + f[2] + " " + f[3], new String[] {f[4]});
            } else if (f.length >= 2 && (f[1].equals("box") || f[1].equals("size"))) {
                m.put(f[0] + " " + f[1], java.util.Arrays.copyOfRange(f, 2, f.length));
            } else {
                m.put(f[0], java.util.Arrays.copyOfRange(f, 1, f.length));
            }
        }
        return m;
    }

    @Test
    void programMatchesReference() throws Exception {
        Path list = tmp.resolve("photos.txt");
        Files.write(list, Reference.fitPhotos().stream().map(Path::toString).toList());
        String model = Reference.model().toString();
        String photo = Reference.photo().toString();
        String out = run("--model", model, "--photos", list.toString(), "--save", tmp.toString(), photo);
        Map<String, String[]> got = parse(out);
        Path layer0 = tmp.resolve("layer0.chip");
        Path layer1 = tmp.resolve("layer1.chip");
        // Loading the saved fits prints the same (less the "fit" line).
        String again = run("--model", model, "--fit", layer0 + "," + layer1, photo);
        assertEquals(out.substring(out.indexOf('\n') + 1), again);

        Path cli = Reference.cli();
        if (cli == null && Reference.referenceRequired()) {
            fail("the chip tool was not found: set -Dchip.cli or CHIP_CLI");
        }
        assumeTrue(cli != null, "the chip tool was not found");
        Reference.CliResult ref = Reference.explain(cli, List.of(layer0, layer1), Reference.photo(), tmp.resolve("cli"), true);
        assertEquals(Reference.SHALLOW_LAYER, got.get("layer0")[0]);
        assertEquals(String.valueOf(ref.top().get(0).classId()), got.get("top1")[0]);
        assertEquals(ref.top().get(0).probability(), Double.parseDouble(got.get("top1")[1]), 1e-5);
        Reference.CliClass c = ref.classes().get(0);
        Map<String, Reference.CliMap> maps = Map.of("layer0", c.layers().get(0), "layer1", c.layers().get(1), "refined", c.refined());
        for (Map.Entry<String, Reference.CliMap> e : maps.entrySet()) {
            String key = e.getKey();
            Reference.CliMap m = e.getValue();
            assertNotNull(m.box(), key);
            assertEquals(m.box()[0] + " " + m.box()[1] + " " + m.box()[2] + " " + m.box()[3], String.join(" ", got.get(key + " box")), key);
            String[] size = got.get(key + " size");
            assertEquals(String.valueOf(m.width()), size[0]);
            assertEquals(String.valueOf(m.height()), size[1]);
            double sum = 0;
            double max = 0;
            for (float v : m.data()) {
                sum += v;
                max = Math.max(max, v);
            }
            assertEquals(sum, Double.parseDouble(size[3]), 1e-5 * Math.max(1, sum), key + " sum");
            assertEquals(max, Double.parseDouble(size[5]), 1e-5, key + " max");
            for (int[] p : ChipDemo.samplePoints(m.width(), m.height())) {
                String[] v = got.get(key + " at " + p[0] + " " + p[1]);
                assertNotNull(v, key + " at " + p[0] + "," + p[1]);
                assertEquals(m.data()[p[1] * m.width() + p[0]], Double.parseDouble(v[0]), 1e-5, key + " at " + p[0] + "," + p[1]);
            }
        }
    }

    @Test
    void programErrors() {
        ChipException e = assertThrows(ChipException.class,
                () -> run("--model", tmp.resolve("none.onnx").toString(), "--fit", "x.chip", "photo.png"));
        assertEquals(Status.IO, e.status());
        assertTrue(e.getMessage().contains("none.onnx"));
        assertThrows(IllegalArgumentException.class, () -> run("a.png", "b.png"));
    }
}
