// The tool `{{name}}`: a WebAssembly component written against Gatehouse's contract
// (`wit/world.wit`). componentize-js maps each exported function of the world to the
// function of the same name (camelCase) exported here; imports are ES modules.
import { log } from 'wasi:logging/logging@0.1.0-draft';
import { get } from 'wasi:config/store@0.2.0-draft';

export function greet(name) {
  let greeting = 'Hello';
  try {
    greeting = get('greeting') ?? greeting;
  } catch {
    // A setting the policy withholds reads as an error: keep the default.
  }
  log('info', '{{name}}', `greeting ${name}`);
  return `${greeting}, ${name}!`;
}
