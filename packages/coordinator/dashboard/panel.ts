/** A titled box of the page, appended to `container`; `wide` spans every column. */
export function panel(
  container: HTMLElement,
  options: { id: string; title: string; wide: boolean },
): HTMLElement {
  const box = document.createElement('section');
  box.className = options.wide ? 'panel wide' : 'panel';
  box.id = options.id;
  const heading = document.createElement('h2');
  heading.textContent = options.title;
  box.append(heading);
  container.append(box);
  return box;
}
