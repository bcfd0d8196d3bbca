package dev.isthmus.cli.local;

/** The local federation could not be started or stopped; the message names the cause and the fix. */
public final class LocalFederationException extends Exception {
    public LocalFederationException(String message) {
        super(message);
    }
}
