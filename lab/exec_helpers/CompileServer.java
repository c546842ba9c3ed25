// In-process javac for the executor: one JVM compiles many programs (~50 ms each instead of ~500 ms).
// Protocol on stdin/stdout, all integers big-endian:
//   request:  int n, n bytes of UTF-8 source (a file named Problem.java)
//   response: int ok (1 = compiled), int n + n bytes of diagnostics,
//             int classes, then per class: int n + n bytes of binary name, int n + n bytes of class file.
import javax.tools.*;
import java.io.*;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.*;

public class CompileServer {
    static class Source extends SimpleJavaFileObject {
        final String code;
        Source(String code) {
            super(URI.create("string:///Problem.java"), Kind.SOURCE);
            this.code = code;
        }
        @Override public CharSequence getCharContent(boolean ignoreEncodingErrors) { return code; }
    }

    static class ClassBytes extends SimpleJavaFileObject {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ClassBytes(String name) { super(URI.create("bytes:///" + name.replace('.', '/') + ".class"), Kind.CLASS); }
        @Override public OutputStream openOutputStream() { return bytes; }
    }

    static byte[] readBlock(DataInputStream in) throws IOException {
        byte[] data = new byte[in.readInt()];
        in.readFully(data);
        return data;
    }

    static void writeBlock(DataOutputStream out, byte[] data) throws IOException {
        out.writeInt(data.length);
        out.write(data);
    }

    public static void main(String[] args) throws Exception {
        JavaCompiler compiler = ToolProvider.getSystemJavaCompiler();
        DataInputStream in = new DataInputStream(new BufferedInputStream(System.in));
        DataOutputStream out = new DataOutputStream(new BufferedOutputStream(System.out));
        StandardJavaFileManager standard = compiler.getStandardFileManager(null, null, StandardCharsets.UTF_8);
        List<String> options = Arrays.asList("-classpath", args.length > 0 ? args[0] : "", "-encoding", "UTF8");
        while (true) {
            byte[] request;
            try { request = readBlock(in); } catch (EOFException end) { return; }
            Map<String, ClassBytes> classes = new LinkedHashMap<>();
            JavaFileManager memory = new ForwardingJavaFileManager<JavaFileManager>(standard) {
                @Override public JavaFileObject getJavaFileForOutput(Location location, String name, JavaFileObject.Kind kind, FileObject sibling) {
                    ClassBytes file = new ClassBytes(name);
                    classes.put(name, file);
                    return file;
                }
            };
            StringWriter diagnostics = new StringWriter();
            boolean ok = compiler.getTask(diagnostics, memory, null, options, null,
                    List.of(new Source(new String(request, StandardCharsets.UTF_8)))).call();
            out.writeInt(ok ? 1 : 0);
            writeBlock(out, diagnostics.toString().getBytes(StandardCharsets.UTF_8));
            out.writeInt(ok ? classes.size() : 0);
            if (ok) {
                for (Map.Entry<String, ClassBytes> entry : classes.entrySet()) {
                    writeBlock(out, entry.getKey().getBytes(StandardCharsets.UTF_8));
                    writeBlock(out, entry.getValue().bytes.toByteArray());
                }
            }
            out.flush();
        }
    }
}
