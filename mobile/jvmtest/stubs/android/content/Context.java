// The generated go.Seq names android.content.Context in a method the
// desktop JVM never calls; this empty class lets it compile off Android.
package android.content;

public class Context {}
