package dev.isthmus.api.names;

/**
 * The name of a federation, such as {@code acme}. It is a NATS subject token, so every subject
 * of the federation can start with {@code isthmus.<federation>.}.
 */
public record FederationName(String value) {

    public FederationName {
        DnsLabel.require("federation name", value);
    }

    public static FederationName of(String value) {
        return new FederationName(value);
    }

    @Override
    public String toString() {
        return value;
    }
}
