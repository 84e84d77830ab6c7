import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

/**
 * Drives carthouse through pgjdbc the way a JDBC BI tool does, printing one line per fact:
 *
 *   SERVER <product> <version>
 *   TABLE <name>
 *   COLUMN <name> <TYPE_NAME> <java.sql.Types code>
 *   COUNT <n>
 *   MINTS <min(event_time) as string>
 *   PS <run> <product_id> <count> <sum(price)>      (7 runs: pgjdbc server-prepares after 5)
 *   TYPES <int> <bigint> <double> <decimal> <bool> <text> <date> <timestamp>
 *   ERROR <sqlstate>                                (after a bad query; the connection then goes on)
 *   AFTER_ERROR <n>
 *   DONE
 *
 * Usage: java -cp postgresql.jar:. JdbcCheck PORT PID1 [PID2 ...]
 */
public class JdbcCheck {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        long[] pids = new long[args.length - 1];
        for (int i = 1; i < args.length; i++) {
            pids[i - 1] = Long.parseLong(args[i]);
        }
        String url = "jdbc:postgresql://127.0.0.1:" + port + "/carthouse?user=carthouse";
        Properties props = new Properties();
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "120");
        props.setProperty("sslmode", "disable");
        props.setProperty("ApplicationName", "carthouse-e2e-jdbc");

        try (Connection conn = DriverManager.getConnection(url, props)) {
            DatabaseMetaData md = conn.getMetaData();
            System.out.println("SERVER " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());

            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    System.out.println("TABLE " + rs.getString("TABLE_NAME"));
                }
            }
            try (ResultSet rs = md.getColumns(null, null, "events", null)) {
                while (rs.next()) {
                    System.out.println("COLUMN " + rs.getString("COLUMN_NAME") + " "
                            + rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE"));
                }
            }

            try (Statement st = conn.createStatement()) {
                try (ResultSet rs = st.executeQuery("SELECT count(*) FROM events")) {
                    rs.next();
                    System.out.println("COUNT " + rs.getLong(1));
                }
                try (ResultSet rs = st.executeQuery("SELECT min(event_time) FROM events")) {
                    rs.next();
                    System.out.println("MINTS " + rs.getTimestamp(1).toInstant());
                }
            }

            String sql = "SELECT count(*), sum(price) FROM events "
                    + "WHERE product_id = ? AND price > ? AND event_type <> ?";
            try (PreparedStatement ps = conn.prepareStatement(sql)) {
                for (int run = 0; run < 7; run++) {
                    long pid = pids[run % pids.length];
                    ps.setLong(1, pid);
                    ps.setDouble(2, 1.0);
                    ps.setString(3, "remove_from_cart");
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        System.out.println("PS " + run + " " + pid + " " + rs.getLong(1) + " " + rs.getDouble(2));
                    }
                }
            }

            String tsql = "SELECT CAST(7 AS INT), CAST(9007199254740993 AS BIGINT), CAST(0.5 AS DOUBLE PRECISION), "
                    + "CAST(12.34 AS DECIMAL(10,2)), true, 'tëxt', DATE '2026-10-01', "
                    + "TIMESTAMP '2026-10-01 12:34:56.123456' WHERE 1 = ?";
            try (PreparedStatement ps = conn.prepareStatement(tsql)) {
                for (int run = 0; run < 7; run++) {
                    ps.setInt(1, 1);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        String line = "TYPES " + rs.getInt(1) + " " + rs.getLong(2) + " " + rs.getDouble(3) + " "
                                + rs.getBigDecimal(4).toPlainString() + " " + rs.getBoolean(5) + " "
                                + rs.getString(6) + " " + rs.getDate(7) + " " + rs.getTimestamp(8);
                        if (run == 0 || run == 6) {
                            System.out.println(line);
                        }
                    }
                }
            }

            try (Statement st = conn.createStatement()) {
                try {
                    st.executeQuery("SELECT * FROM no_such_table_e2e");
                    System.out.println("ERROR none");
                } catch (SQLException e) {
                    System.out.println("ERROR " + e.getSQLState());
                }
                try (ResultSet rs = st.executeQuery("SELECT count(*) FROM events WHERE event_type = 'purchase'")) {
                    rs.next();
                    System.out.println("AFTER_ERROR " + rs.getLong(1));
                }
            }
        }
        System.out.println("DONE");
    }
}
