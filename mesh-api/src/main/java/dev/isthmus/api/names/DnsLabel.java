package dev.isthmus.api.names;

import java.util.regex.Pattern;

/** The one rule for names that must be DNS labels (RFC 1123): clusters, federations, namespaces, services. */
public final class DnsLabel {

    private static final Pattern LABEL = Pattern.compile("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");

    private DnsLabel() {
    }

    /** Returns {@code value} if it is a DNS label; otherwise throws naming {@code what} and the rule. */
    public static String require(String what, String value) {
        if (value == null) {
            throw new IllegalArgumentException(what + " is missing");
        }
        if (!LABEL.matcher(value).matches()) {
            throw new IllegalArgumentException(what + " '" + value
                    + "' is not a DNS label: use 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit");
        }
        return value;
    }
}
