package dev.isthmus.proxy.config.xds;

import java.util.regex.Pattern;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.error.MarkedYAMLException;
import org.yaml.snakeyaml.error.YAMLException;
import org.yaml.snakeyaml.nodes.Tag;
import org.yaml.snakeyaml.representer.Representer;
import org.yaml.snakeyaml.resolver.Resolver;

/**
 * YAML (or JSON, which YAML contains) read as JSON's data, for {@link ProtoJson}: the bootstrap file's
 * reader. Booleans are YAML 1.2's, as Envoy's own YAML loader reads them: only {@code true} and
 * {@code false} ({@code on}, {@code yes} stay strings); there are no timestamps; numbers and
 * {@code null} in snakeyaml's forms. Anchors, aliases and merge keys work; alias expansion is
 * bounded by snakeyaml's defaults.
 *
 * <p>Written on snakeyaml alone (not a JSON object mapper) so that a sidecar loads as few classes as
 * it can: each loaded class is resident memory in every sidecar.
 */
final class YamlJson {

    private static final Pattern BOOL = Pattern.compile("^(?:true|True|TRUE|false|False|FALSE)$");

    private YamlJson() {
    }

    /** The error says where (line and column, 1-based) and what. */
    static final class YamlError extends Exception {
        YamlError(String message) {
            super(message);
        }
    }

    /** The document as JSON's data: maps, lists, strings, numbers, booleans, nulls (and byte[] for YAML's {@code !!binary}). */
    static Object load(String yaml) throws YamlError {
        Object tree;
        try {
            var options = new LoaderOptions();
            options.setAllowDuplicateKeys(false); // a key given twice is a mistake to report, not one to pick a winner for
            tree = new Yaml(new SafeConstructor(options), new Representer(new DumperOptions()), new DumperOptions(), options, new CoreSchema()).load(yaml);
        } catch (MarkedYAMLException e) {
            var mark = e.getProblemMark() != null ? e.getProblemMark() : e.getContextMark();
            String where = mark == null ? "" : " at line " + (mark.getLine() + 1) + ", column " + (mark.getColumn() + 1);
            String what = e.getProblem() != null ? e.getProblem() : e.getContext();
            throw new YamlError(what + where);
        } catch (YAMLException e) {
            throw new YamlError(e.getMessage());
        }
        return tree;
    }

    /** snakeyaml's resolver without YAML 1.1's yes/no/on/off booleans and without timestamps. */
    private static final class CoreSchema extends Resolver {
        @Override
        protected void addImplicitResolvers() {
            addImplicitResolver(Tag.BOOL, BOOL, "tTfF");
            addImplicitResolver(Tag.INT, INT, "-+0123456789");
            addImplicitResolver(Tag.FLOAT, FLOAT, "-+.0123456789");
            addImplicitResolver(Tag.MERGE, MERGE, "<");
            addImplicitResolver(Tag.NULL, NULL, "~nN\0");
            addImplicitResolver(Tag.NULL, EMPTY, null);
        }
    }
}
