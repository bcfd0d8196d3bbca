package dev.isthmus.proxy;

/** JSON text for the admin pages, written without a JSON library on the proxies' classpath. */
public final class JsonText {

    private JsonText() {
    }

    /** {@code s} as a JSON string literal, quotes and control characters escaped. */
    public static String quote(String s) {
        var out = new StringBuilder(s.length() + 2).append('"');
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}
