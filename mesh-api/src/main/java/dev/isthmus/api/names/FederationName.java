package dev.isthmus.api.names;

import java.util.Objects;
import java.util.regex.Pattern;

/**
 * The name of a federation, such as {@code acme}. It is a NATS subject token, so every subject
 * of the federation can start with {@code isthmus.<federation>.}.
 */
public record FederationName(String value) {

    private static final Pattern TOKEN = Pattern.compile("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");

    public FederationName {
        Objects.requireNonNull(value, "federation name");
        if (!TOKEN.matcher(value).matches()) {
            throw new IllegalArgumentException("federation name '" + value
                    + "' is not valid: use 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit");
        }
    }

    public static FederationName of(String value) {
        return new FederationName(value);
    }

    @Override
    public String toString() {
        return value;
    }
}
