// Placeholder, replaced by the signer.
public enum CCAuthV1 {}
