package dev.isthmus.cli;

import java.util.ArrayList;
import java.util.List;

/** A plain-text table with aligned columns, for terminal output. */
final class Table {

    private final List<String[]> rows = new ArrayList<>();

    Table(String... header) {
        rows.add(header);
    }

    Table row(Object... cells) {
        var r = new String[cells.length];
        for (int i = 0; i < cells.length; i++) {
            r[i] = String.valueOf(cells[i]);
        }
        rows.add(r);
        return this;
    }

    String render() {
        int cols = rows.get(0).length;
        int[] width = new int[cols];
        for (String[] r : rows) {
            for (int i = 0; i < cols; i++) {
                width[i] = Math.max(width[i], r[i].length());
            }
        }
        var sb = new StringBuilder();
        for (String[] r : rows) {
            for (int i = 0; i < cols; i++) {
                sb.append(i == cols - 1 ? r[i] : String.format("%-" + (width[i] + 2) + "s", r[i]));
            }
            sb.append('\n');
        }
        return sb.toString();
    }
}
