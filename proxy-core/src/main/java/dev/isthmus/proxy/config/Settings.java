package dev.isthmus.proxy.config;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The settings of a proxy process, read once at start from {@code --name=value} arguments and
 * {@code ISTHMUS_NAME} environment variables (arguments win). Lookups of missing or malformed
 * values fail with a message naming the setting, its variable and the expected form.
 */
public final class Settings {

    private final Map<String, String> values;
    private final String app;

    private Settings(String app, Map<String, String> values) {
        this.app = app;
        this.values = values;
    }

    public static Settings from(String app, String[] args, Map<String, String> env) {
        var values = new LinkedHashMap<String, String>();
        env.forEach((k, v) -> {
            if (k.startsWith("ISTHMUS_")) {
                values.put(k.substring("ISTHMUS_".length()).toLowerCase().replace('_', '-'), v);
            }
        });
        List<String> bad = new ArrayList<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (!arg.startsWith("--") || eq < 3) {
                bad.add(arg);
                continue;
            }
            values.put(arg.substring(2, eq), arg.substring(eq + 1));
        }
        if (!bad.isEmpty()) {
            throw new SettingsException(app + ": arguments must look like --name=value; not understood: " + bad);
        }
        return new Settings(app, values);
    }

    public Optional<String> optional(String name) {
        return Optional.ofNullable(values.get(name)).filter(s -> !s.isBlank());
    }

    public String string(String name, String fallback) {
        return optional(name).orElse(fallback);
    }

    public String required(String name) {
        return optional(name).orElseThrow(() -> new SettingsException(
                app + ": setting '" + name + "' is required: pass --" + name + "=... or set " + variable(name)));
    }

    public int port(String name, int fallback) {
        String raw = optional(name).orElse(Integer.toString(fallback));
        try {
            int port = Integer.parseInt(raw);
            if (port < 0 || port > 65535) {
                throw new NumberFormatException();
            }
            return port;
        } catch (NumberFormatException e) {
            throw new SettingsException(app + ": setting '" + name + "' (" + variable(name) + ") must be a port 0-65535, got '" + raw + "'");
        }
    }

    /** A {@code host:port} address. */
    public InetSocketAddress address(String name, String fallback) {
        String raw = optional(name).orElse(fallback);
        int colon = raw.lastIndexOf(':');
        try {
            if (colon <= 0) {
                throw new NumberFormatException();
            }
            int port = Integer.parseInt(raw.substring(colon + 1));
            if (port < 0 || port > 65535) {
                throw new NumberFormatException();
            }
            return new InetSocketAddress(raw.substring(0, colon), port);
        } catch (NumberFormatException e) {
            throw new SettingsException(app + ": setting '" + name + "' (" + variable(name) + ") must be host:port, got '" + raw + "'");
        }
    }

    public InetSocketAddress requiredAddress(String name) {
        return address(name, required(name));
    }

    public static String variable(String name) {
        return "ISTHMUS_" + name.toUpperCase().replace('-', '_');
    }

    /** A setting that is missing or malformed; the message says which and how to fix it. */
    public static final class SettingsException extends RuntimeException {
        public SettingsException(String message) {
            super(message);
        }
    }
}
