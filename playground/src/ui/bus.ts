/** A set of listeners: how one subscription (the inbox) feeds several views. */
export class Bus<T> {
  private readonly listeners = new Set<(value: T) => void>();

  listen(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(value: T): void {
    this.listeners.forEach((listener) => listener(value));
  }
}
