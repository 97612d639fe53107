// A stand-in for a model a notebook trains remotely. Edit it and run again: the agent runs the new code.

export interface TrainReport {
  rate: number;
  epochs: number;
  loss: number;
  host: string;
}

/** Module-level state: it survives between calls for as long as this file is unchanged. */
let calls = 0;

export function train(rate: number, epochs = 3): TrainReport {
  if (!(rate > 0 && rate < 1)) throw new RangeError(`learning rate must be in (0, 1), got ${rate}`);
  calls++;
  let loss = 1;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    loss *= 1 - rate;
    console.log(`epoch ${epoch}: loss ${loss.toFixed(4)}`);
  }
  return { rate, epochs, loss, host: require('node:os').hostname() };
}

export function callCount(): number {
  return calls;
}
